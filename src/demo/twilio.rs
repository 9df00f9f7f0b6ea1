//! A Twilio-Verify-shaped test server (Verify API v2).
//!
//! - HTTP Basic auth with the account SID and auth token, else 401 (20003);
//! - `POST /v2/Services/{sid}/Verifications` form `To` (E.164), `Channel`
//!   → 201 verification (`status: pending`); 400 (60200) for a `To` that is
//!   not E.164; 429 (60203) after five sends to one number;
//! - `POST /v2/Services/{sid}/VerificationCheck` form `To`, `Code` → 200
//!   `status: approved`, or 200 `status: pending` for a wrong code; 429
//!   (60202) after five checks; 404 (20404) when there is no pending
//!   verification (expired, approved already, never sent).
//!   Unknown service SID → 404 (20404).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use tokio::time::Instant;

use super::{base64, json_response, random_code, same, DemoError, RecordedRequest, RequestLog, Server};

#[derive(Clone, Debug)]
pub struct TwilioOptions {
    pub bind: SocketAddr,
    pub account_sid: String,
    pub auth_token: String,
    pub service_sid: String,
    /// Twilio: a verification expires after 10 minutes.
    pub code_ttl: Duration,
    pub max_checks: u32,
    pub max_sends: u32,
}

impl Default for TwilioOptions {
    fn default() -> Self {
        TwilioOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            account_sid: "ACdemo0000000000000000000000000000".into(),
            auth_token: "demo-auth-token".into(),
            service_sid: "VAdemo0000000000000000000000000000".into(),
            code_ttl: Duration::from_secs(600),
            max_checks: 5,
            max_sends: 5,
        }
    }
}

struct Verification {
    sid: String,
    channel: String,
    code: String,
    created: Instant,
    checks: u32,
    sends: u32,
}

struct Shared {
    options: TwilioOptions,
    state: Mutex<HashMap<String, Verification>>,
    sent: Mutex<Vec<(String, String)>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Verification>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct TwilioVerifyShaped {
    server: Server,
    shared: Arc<Shared>,
    log: RequestLog,
}

fn twilio_error(status: u16, code: u32, message: &str) -> Response {
    json_response(
        status,
        json!({"code": code, "message": message,
               "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status}),
    )
}

fn is_e164(s: &str) -> bool {
    let Some(d) = s.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
}

fn authorized(s: &Shared, headers: &HeaderMap) -> bool {
    let o = &s.options;
    let want = format!(
        "Basic {}",
        base64(format!("{}:{}", o.account_sid, o.auth_token).as_bytes())
    );
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| same(v, &want))
}

fn verification_json(s: &Shared, to: &str, v: &Verification, status: &str) -> Json {
    let o = &s.options;
    json!({
        "sid": v.sid, "service_sid": o.service_sid, "account_sid": o.account_sid,
        "to": to, "channel": v.channel, "status": status, "valid": status == "approved",
        "amount": null, "payee": null,
        "send_code_attempts": [], "date_created": "2026-01-01T00:00:00Z",
        "url": format!("https://verify.twilio.com/v2/Services/{}/Verifications/{}", o.service_sid, v.sid),
    })
}

impl TwilioVerifyShaped {
    pub async fn start(options: TwilioOptions) -> Result<Self, DemoError> {
        let bind = options.bind;
        let shared = Arc::new(Shared {
            options,
            state: Mutex::new(HashMap::new()),
            sent: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route("/v2/Services/:sid/Verifications", post(start_verification))
            .route("/v2/Services/:sid/VerificationCheck", post(check_verification))
            .with_state(shared.clone());
        let log = RequestLog::default();
        let server = Server::start(bind, router, log.clone()).await?;
        Ok(TwilioVerifyShaped {
            server,
            shared,
            log,
        })
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn options(&self) -> &TwilioOptions {
        &self.shared.options
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.snapshot()
    }

    /// The newest code sent to E.164 number `to`.
    pub fn last_code(&self, to: &str) -> Option<String> {
        self.shared
            .sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .find(|(t, _)| t == to)
            .map(|(_, c)| c.clone())
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartForm {
    to: Option<String>,
    channel: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CheckForm {
    to: Option<String>,
    code: Option<String>,
}

fn guard(s: &Shared, headers: &HeaderMap, sid: &str) -> Option<Response> {
    if !authorized(s, headers) {
        return Some(twilio_error(401, 20003, "Authentication Error - invalid username"));
    }
    if sid != s.options.service_sid {
        return Some(twilio_error(404, 20404, "The requested resource was not found"));
    }
    None
}

async fn start_verification(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    UrlPath(sid): UrlPath<String>,
    form: Option<Form<StartForm>>,
) -> Response {
    if let Some(r) = guard(&s, &headers, &sid) {
        return r;
    }
    let Some(Form(form)) = form else {
        return twilio_error(400, 20001, "Missing required parameter To in the post body");
    };
    let Some(to) = form.to.filter(|t| is_e164(t)) else {
        return twilio_error(400, 60200, "Invalid parameter `To`");
    };
    let channel = form.channel.unwrap_or_default();
    if !matches!(channel.as_str(), "sms" | "call" | "email" | "whatsapp") {
        return twilio_error(400, 60200, "Invalid parameter `Channel`");
    }
    let now = Instant::now();
    let mut st = s.lock();
    let ttl = s.options.code_ttl;
    let live = st
        .get(&to)
        .is_some_and(|v| now.saturating_duration_since(v.created) <= ttl);
    if !live {
        let n: u128 = rand::random();
        st.insert(
            to.clone(),
            Verification {
                sid: format!("VE{:032x}", n),
                channel: channel.clone(),
                code: random_code(6),
                created: now,
                checks: 0,
                sends: 0,
            },
        );
    }
    let Some(v) = st.get_mut(&to) else {
        return twilio_error(500, 20500, "Internal Server Error");
    };
    if v.sends >= s.options.max_sends {
        return twilio_error(429, 60203, "Max send attempts reached");
    }
    v.sends += 1;
    v.channel = channel;
    s.sent
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((to.clone(), v.code.clone()));
    json_response(201, verification_json(&s, &to, v, "pending"))
}

async fn check_verification(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    UrlPath(sid): UrlPath<String>,
    form: Option<Form<CheckForm>>,
) -> Response {
    if let Some(r) = guard(&s, &headers, &sid) {
        return r;
    }
    let Some(Form(CheckForm {
        to: Some(to),
        code: Some(code),
    })) = form
    else {
        return twilio_error(400, 60200, "Invalid parameter");
    };
    let now = Instant::now();
    let ttl = s.options.code_ttl;
    let mut st = s.lock();
    let Some(v) = st.get_mut(&to) else {
        return twilio_error(404, 20404, "The requested resource was not found");
    };
    if now.saturating_duration_since(v.created) > ttl {
        st.remove(&to);
        return twilio_error(404, 20404, "The requested resource was not found");
    }
    if v.checks >= s.options.max_checks {
        return twilio_error(429, 60202, "Max check attempts reached");
    }
    v.checks += 1;
    if same(&v.code, &code) {
        let body = verification_json(&s, &to, v, "approved");
        st.remove(&to);
        json_response(200, body)
    } else {
        let body = verification_json(&s, &to, v, "pending");
        json_response(200, body)
    }
}
