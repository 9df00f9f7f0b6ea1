//! Audit records of reset attempts: a durable local spool and delivery to
//! the `audit` data action.
//!
//! A record is written to an append-only JSON-lines file and `fsync`ed
//! before [`Spool::append`] returns; a [`Deliverer`] task forwards pending
//! records through a configured action (the record id travels as an
//! idempotency key so the receiver can drop duplicates), with capped
//! exponential backoff, and acknowledges each one in a second append-only
//! log. After a crash or restart every record not yet acknowledged is
//! pending again, so delivery is at-least-once and — with the receiver
//! deduplicating by id — effectively exactly once.
//!
//! Records hold only fixed tokens (result, reason, method) and plain call
//! facts (ANI, call id, flow name and version); the type has no field that
//! could take a `Secret`. This module does not sign or encrypt the spool;
//! protect the directory with file permissions (the service's state dir).

mod deliver;
mod log;
mod spool;
mod trail;

pub use deliver::{Backoff, Deliverer, DeliveryTarget, DEFAULT_DEAD_LETTER_AFTER};
pub use spool::{Spool, DEAD_LETTERS};
pub use trail::{AuditTrail, AUDIT_UNAVAILABLE, STARTED};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::vars::Vars;

/// The `method` field of every record.
pub const METHOD: &str = "IVR-SSPR";

/// Wall-clock time, injected so that tests and golden transcripts are
/// deterministic.
pub trait Clock: Send + Sync {
    fn now_utc(&self) -> OffsetDateTime;
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_utc(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that always says the same time (tests).
#[derive(Clone, Copy, Debug)]
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now_utc(&self) -> OffsetDateTime {
        self.0
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("audit spool {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("audit record not serialisable: {0}")]
    Encode(String),
    #[error("audit delivery: {0}")]
    Delivery(String),
}

/// One audit record. Field names are the wire names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Unique: 128 random bits as hex. Receivers deduplicate on it.
    pub id: String,
    /// A fixed token, e.g. `success`, `policy_rejected`, `locked`.
    pub result: String,
    /// UTC, RFC 3339, millisecond precision.
    pub timestamp: String,
    /// Always [`METHOD`].
    pub method: String,
    pub ani: String,
    pub call_id: String,
    pub flow: String,
    pub flow_version: String,
    /// A fixed token from the flow, e.g. `otp_exhausted`.
    pub reason: String,
}

/// Bound a plain call fact: at most 128 characters, no control characters.
fn fact(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(128).collect()
}

/// A fixed token: letters, digits, `_ - . :`, at most 64; anything else
/// becomes `_` (a token from a flow never needs more, and this keeps free
/// text out of the audit trail).
fn token(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// RFC 3339 in UTC with milliseconds: `2026-11-26T08:30:00.123Z`.
pub fn rfc3339_utc(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let t = t
        .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// The plain call facts a record is made from.
#[derive(Clone, Debug, Default)]
pub struct CallFacts<'a> {
    pub ani: &'a str,
    pub call_id: &'a str,
    pub flow: &'a str,
    pub flow_version: &'a str,
}

impl AuditRecord {
    /// A new record with a fresh random id and the clock's current time.
    pub fn new(clock: &dyn Clock, facts: &CallFacts<'_>, result: &str, reason: &str) -> Self {
        let id: u128 = rand::random();
        AuditRecord {
            id: format!("{id:032x}"),
            result: token(result),
            timestamp: rfc3339_utc(clock.now_utc()),
            method: METHOD.to_string(),
            ani: fact(facts.ani),
            call_id: fact(facts.call_id),
            flow: token(facts.flow),
            flow_version: token(facts.flow_version),
            reason: token(reason),
        }
    }

    /// The record as template variables (all plain) for the audit action:
    /// `id`, `result`, `timestamp`, `method`, `ani`, `call_id`, `flow`,
    /// `flow_version`, `reason`.
    pub fn to_vars(&self) -> Vars {
        let mut v = Vars::new();
        v.set_plain("id", &self.id);
        v.set_plain("result", &self.result);
        v.set_plain("timestamp", &self.timestamp);
        v.set_plain("method", &self.method);
        v.set_plain("ani", &self.ani);
        v.set_plain("call_id", &self.call_id);
        v.set_plain("flow", &self.flow);
        v.set_plain("flow_version", &self.flow_version);
        v.set_plain("reason", &self.reason);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn record_fields_and_timestamp() {
        let clock = FixedClock(datetime!(2026-11-26 10:30:00.123456 +02:00));
        let facts = CallFacts {
            ani: "+15550100199\r\nX",
            call_id: "abc@host",
            flow: "sspr",
            flow_version: "3",
        };
        let a = AuditRecord::new(&clock, &facts, "policy rejected", "too_simple");
        let b = AuditRecord::new(&clock, &facts, "success", "reset");
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 32);
        assert_eq!(a.timestamp, "2026-11-26T08:30:00.123Z");
        assert_eq!(a.method, "IVR-SSPR");
        assert_eq!(a.result, "policy_rejected");
        assert_eq!(a.ani, "+15550100199X");
        let json = serde_json::to_string(&a).unwrap();
        let back: AuditRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
        assert_eq!(a.to_vars().plain("call_id"), Some("abc@host"));
        assert!(SystemClock.now_utc().year() >= 2024);
    }
}
