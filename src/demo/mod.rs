//! In-process HTTP backends on loopback: the demo directory / OTP / reset /
//! audit service that `sspr-ivr demo` runs, and Okta-shaped and
//! Twilio-Verify-shaped servers that integration tests point the provider
//! example configs at.
//!
//! All of them are axum servers bound to `127.0.0.1` (ephemeral port unless
//! told otherwise; a non-loopback bind is refused), stop when their handle is
//! shut down or dropped, and record every request they receive (method, path,
//! headers, body as JSON) in a [`RequestLog`] tests can read. They are
//! stand-ins: state is in memory, "SMS" goes to stdout with a DEMO label, and
//! the provider shapes follow the public API documentation closely enough for
//! the shipped example wirings — not every field or error of the real APIs.

mod backend;
mod okta;
mod twilio;

pub use backend::{
    demo_actions, demo_actions_yaml, DemoBackend, DemoOptions, DemoUser, DemoUsers, SentCode,
};
pub use okta::{OktaOptions, OktaShaped};
pub use twilio::{TwilioOptions, TwilioVerifyShaped};

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use serde_json::Value as Json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    #[error("demo server must bind a loopback address, not {0}")]
    NotLoopback(SocketAddr),
    #[error("demo server bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("demo users fixture {file}: {message}")]
    Users { file: String, message: String },
}

/// One request as a backend received it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    /// JSON body as is; a form body as an object of strings; `Null` if
    /// empty; anything else as a JSON string.
    pub body: Json,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Every request a test server received, shared with the test.
#[derive(Clone, Debug, Default)]
pub struct RequestLog(Arc<Mutex<Vec<RecordedRequest>>>);

impl RequestLog {
    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn push(&self, r: RecordedRequest) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(r);
    }
}

/// Largest request body the test servers accept.
const MAX_BODY: usize = 64 * 1024;

async fn record(State(log): State<RequestLog>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return Response::builder()
                .status(413)
                .body(Body::empty())
                .unwrap_or_default()
        }
    };
    let is_form = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body = if bytes.is_empty() {
        Json::Null
    } else if is_form {
        match serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes) {
            Ok(pairs) => Json::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, Json::String(v)))
                    .collect(),
            ),
            Err(_) => Json::String(String::from_utf8_lossy(&bytes).into_owned()),
        }
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    log.push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    });
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// A running loopback server.
struct Server {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Server {
    async fn start(bind: SocketAddr, router: Router, log: RequestLog) -> Result<Self, DemoError> {
        if !bind.ip().is_loopback() {
            return Err(DemoError::NotLoopback(bind));
        }
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|source| DemoError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| DemoError::Bind { addr: bind, source })?;
        let router = router.layer(axum::middleware::from_fn_with_state(log, record));
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "demo server stopped");
            }
        });
        Ok(Server {
            addr,
            cancel,
            task: Some(task),
        })
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The demo PIN policy (also used by the Okta-shaped server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinVerdict {
    Ok,
    TooSimple,
    Reused,
}

/// Exactly 6 digits, not all the same, not an ascending or descending run,
/// not one of the last three (`history` is oldest first).
pub fn pin_policy(pin: &str, history: &[String]) -> PinVerdict {
    let d: Vec<u8> = pin.bytes().collect();
    if d.len() != 6 || !d.iter().all(u8::is_ascii_digit) {
        return PinVerdict::TooSimple;
    }
    let steps: Vec<i16> = d
        .windows(2)
        .map(|w| i16::from(w[1]) - i16::from(w[0]))
        .collect();
    if steps.iter().all(|s| *s == 0) || steps.iter().all(|s| *s == 1) || steps.iter().all(|s| *s == -1) {
        return PinVerdict::TooSimple;
    }
    if history.iter().rev().take(3).any(|h| h == pin) {
        return PinVerdict::Reused;
    }
    PinVerdict::Ok
}

/// Standard base64 (RFC 4648 §4) for comparing Basic credentials.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A random numeric code of `len` digits from the OS-seeded CSPRNG.
fn random_code(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// Constant-time string comparison for codes.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn json_response(status: u16, body: Json) -> Response {
    Response::builder()
        .status(status)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_policy_table() {
        let history = vec!["111222".to_string(), "482913".to_string(), "902817".to_string(), "551177".to_string()];
        for (pin, want) in [
            ("739164", PinVerdict::Ok),
            ("111111", PinVerdict::TooSimple),
            ("123456", PinVerdict::TooSimple),
            ("654321", PinVerdict::TooSimple),
            ("345678", PinVerdict::TooSimple),
            ("12345", PinVerdict::TooSimple),
            ("1234567", PinVerdict::TooSimple),
            ("12a456", PinVerdict::TooSimple),
            ("551177", PinVerdict::Reused),
            ("482913", PinVerdict::Reused),
            ("111222", PinVerdict::Ok), // fourth-last: allowed again
        ] {
            assert_eq!(pin_policy(pin, &history), want, "{pin}");
        }
    }

    #[test]
    fn base64_vectors() {
        for (i, o) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert!(same("123456", "123456"));
        assert!(!same("123456", "123457"));
        assert!(!same("12345", "123456"));
        assert_eq!(random_code(6).len(), 6);
    }
}
