//! The demo backend: a small custom REST directory, OTP service, PIN reset
//! and audit receiver, with the action wiring for it.
//!
//! API (all JSON):
//! - `GET  /users/{employee_id}` → 200 user (`status: LOCKED_OUT` when
//!   locked) | 404
//! - `POST /users/{user_id}/otp` `{channel}` → 202 | 429 inside the resend
//!   window | 404
//! - `POST /users/{user_id}/otp/verify` `{code}` → 200 `approved` | 401
//!   `pending` (wrong code) | 410 expired or none | 429 after 5 checks
//! - `POST /users/{user_id}/pin` `{pin}` → 200 | 400 `PIN_TOO_SIMPLE` /
//!   `PIN_REUSED` | 403 `NOT_VERIFIED` (no approved code) | 423 locked
//! - `POST /audit` record → 201 `stored` | 200 `duplicate` (by
//!   `Idempotency-Key` or record `id`)
//!
//! For testers: `GET /demo/requests`, `/demo/codes`, `/demo/audit` show what
//! the backend received, "sent" and stored; `POST /demo/reset` puts everything
//! back as at start-up (the directory with its PINs and lockouts, codes,
//! resend windows, audit records, the request log) and runs the hooks given to
//! [`DemoBackend::on_reset`] (`demo` clears the IVR's attempt limits there).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json as JsonBody, Router};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use tokio::time::Instant;

use super::{
    json_response, pin_policy, random_code, same, DemoError, PinVerdict, RequestLog, Server,
};
use crate::actions::{ActionConfig, ActionError};
use crate::template::last4_of;

const EMBEDDED_USERS: &str = include_str!("users.yaml");

/// One directory entry of the fixture.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoUser {
    pub employee_id: String,
    pub user_id: String,
    pub name: String,
    /// `ACTIVE` or `LOCKED_OUT`.
    pub status: String,
    /// `sms` or `email`.
    pub factor: String,
    #[serde(default)]
    pub mobile: String,
    #[serde(default)]
    pub email: String,
    /// Oldest first; the last entry is the current PIN.
    #[serde(default)]
    pub pin_history: Vec<String>,
}

impl DemoUser {
    pub fn is_locked(&self) -> bool {
        self.status == "LOCKED_OUT"
    }
}

/// The users fixture (`users:` list).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoUsers {
    pub users: Vec<DemoUser>,
}

impl DemoUsers {
    /// The fixture compiled into the binary (`src/demo/users.yaml`).
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED_USERS, "embedded users.yaml")
            .unwrap_or_else(|e| panic!("embedded demo fixture is broken: {e}"))
    }

    pub fn load(path: &Path) -> Result<Self, DemoError> {
        let text = std::fs::read_to_string(path).map_err(|e| DemoError::Users {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    fn parse(text: &str, file: &str) -> Result<Self, DemoError> {
        let users: DemoUsers = serde_yaml::from_str(text).map_err(|e| DemoError::Users {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        let mut ids = HashSet::new();
        for u in &users.users {
            if !ids.insert(u.employee_id.clone()) || !ids.insert(format!("#{}", u.user_id)) {
                return Err(DemoError::Users {
                    file: file.to_string(),
                    message: format!("duplicate user {}", u.employee_id),
                });
            }
            if !matches!(u.factor.as_str(), "sms" | "email") {
                return Err(DemoError::Users {
                    file: file.to_string(),
                    message: format!("user {}: factor must be sms or email", u.employee_id),
                });
            }
        }
        Ok(users)
    }
}

/// Demo backend settings.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Where to listen; must be loopback. Port 0 picks a free one.
    pub bind: SocketAddr,
    pub users: DemoUsers,
    /// Delay before the "SMS" is printed (exercises the comfort loop).
    pub sms_delay: Duration,
    /// A second send for the same user inside this window gets 429.
    pub resend_window: Duration,
    /// How long a code is valid.
    pub code_ttl: Duration,
    /// Checks allowed per code before 429.
    pub max_checks: u32,
    /// Print `[DEMO SMS] …` lines to stdout (off in tests).
    pub print_codes: bool,
    /// Send this code every time instead of a random one, so scripted
    /// callers (sipp scenarios) can type it. Demo only.
    pub fixed_code: Option<String>,
    /// Refuse a PIN reset unless a code was approved for the user in the
    /// last 10 minutes (off when another service, e.g. Twilio Verify, checks
    /// the codes).
    pub require_verified_code: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            users: DemoUsers::embedded(),
            sms_delay: Duration::from_secs(3),
            resend_window: Duration::from_secs(5),
            code_ttl: Duration::from_secs(300),
            max_checks: 5,
            print_codes: true,
            fixed_code: None,
            require_verified_code: true,
        }
    }
}

/// A code the backend "sent" (tests read it instead of a phone).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SentCode {
    pub user_id: String,
    pub channel: String,
    pub code: String,
}

struct Otp {
    code: String,
    issued: Instant,
    checks: u32,
}

#[derive(Default)]
struct DemoState {
    /// By user id.
    users: BTreeMap<String, DemoUser>,
    otps: HashMap<String, Otp>,
    last_send: HashMap<String, Instant>,
    /// User id → approved-code deadline for a reset.
    verified_until: HashMap<String, Instant>,
    sent: Vec<SentCode>,
    audit: Vec<Json>,
    audit_ids: HashSet<String>,
    audit_failures: u32,
}

/// Something else to forget on `POST /demo/reset`.
type ResetHook = Box<dyn Fn() + Send + Sync>;

struct Shared {
    options: DemoOptions,
    state: Mutex<DemoState>,
    on_reset: Mutex<Vec<ResetHook>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, DemoState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Everything as at start-up; returns how many users the directory has.
    fn reset(&self, log: &RequestLog) -> usize {
        let fresh = DemoState::fresh(&self.options.users);
        let users = fresh.users.len();
        *self.lock() = fresh;
        log.clear();
        for hook in self
            .on_reset
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            hook();
        }
        users
    }
}

impl DemoState {
    fn fresh(users: &DemoUsers) -> Self {
        let mut state = DemoState::default();
        for u in &users.users {
            state.users.insert(u.user_id.clone(), u.clone());
        }
        state
    }
}

/// The running demo backend. Stops when dropped or [`DemoBackend::shutdown`].
pub struct DemoBackend {
    server: Server,
    shared: Arc<Shared>,
    log: RequestLog,
}

/// How long an approved code lets the caller reset the PIN.
const VERIFIED_FOR: Duration = Duration::from_secs(600);

impl DemoBackend {
    pub async fn start(options: DemoOptions) -> Result<Self, DemoError> {
        let state = DemoState::fresh(&options.users);
        let bind = options.bind;
        let shared = Arc::new(Shared {
            options,
            state: Mutex::new(state),
            on_reset: Mutex::new(Vec::new()),
        });
        let log = RequestLog::default();
        // Inspection endpoints for testers: what the backend received, the
        // codes it "sent", the audit records it stored. Demo only.
        let (log2, shared2, shared3) = (log.clone(), shared.clone(), shared.clone());
        let (log4, shared4) = (log.clone(), shared.clone());
        let inspect = Router::new()
            .route(
                "/demo/requests",
                get(move || {
                    let log = log2.clone();
                    async move { JsonBody(json!(log.snapshot())) }
                }),
            )
            .route(
                "/demo/codes",
                get(move || {
                    let s = shared2.clone();
                    async move { JsonBody(json!(s.lock().sent.clone())) }
                }),
            )
            .route(
                "/demo/audit",
                get(move || {
                    let s = shared3.clone();
                    async move { JsonBody(json!(s.lock().audit.clone())) }
                }),
            )
            .route(
                "/demo/reset",
                post(move || {
                    let (s, log) = (shared4.clone(), log4.clone());
                    async move { JsonBody(json!({ "reset": true, "users": s.reset(&log) })) }
                }),
            );
        let router = Router::new()
            .route("/users/:id", get(lookup))
            .route("/users/:id/otp", post(send_otp))
            .route("/users/:id/otp/verify", post(verify_otp))
            .route("/users/:id/pin", post(reset_pin))
            .route("/audit", post(audit))
            .with_state(shared.clone())
            .merge(inspect);
        let server = Server::start(bind, router, log.clone()).await?;
        Ok(DemoBackend {
            server,
            shared,
            log,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<super::RecordedRequest> {
        self.log.snapshot()
    }

    pub fn request_log(&self) -> RequestLog {
        self.log.clone()
    }

    /// Codes sent so far, oldest first.
    pub fn sent_codes(&self) -> Vec<SentCode> {
        self.shared.lock().sent.clone()
    }

    /// The newest code sent to `user_id`.
    pub fn last_code(&self, user_id: &str) -> Option<String> {
        self.shared
            .lock()
            .sent
            .iter()
            .rev()
            .find(|s| s.user_id == user_id)
            .map(|s| s.code.clone())
    }

    /// Audit records received (each id once).
    pub fn audit_records(&self) -> Vec<Json> {
        self.shared.lock().audit.clone()
    }

    /// Put everything back as at start-up (`POST /demo/reset` does the same).
    pub fn reset(&self) {
        self.shared.reset(&self.log);
    }

    /// Run `hook` on every reset, after the backend's own state is fresh.
    pub fn on_reset(&self, hook: impl Fn() + Send + Sync + 'static) {
        self.shared
            .on_reset
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(hook));
    }

    /// Answer the next `n` audit posts with 503 (to exercise retries).
    pub fn fail_next_audits(&self, n: u32) {
        self.shared.lock().audit_failures = n;
    }

    /// A user's PIN history (oldest first) — to check a reset happened.
    pub fn pin_history(&self, employee_id: &str) -> Option<Vec<String>> {
        self.shared
            .lock()
            .users
            .values()
            .find(|u| u.employee_id == employee_id)
            .map(|u| u.pin_history.clone())
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

fn user_json(u: &DemoUser) -> Json {
    json!({
        "userId": u.user_id,
        "employeeId": u.employee_id,
        "name": u.name,
        "status": u.status,
        "factor": u.factor,
        "mobile": if u.mobile.is_empty() { Json::Null } else { Json::String(u.mobile.clone()) },
        "email": if u.email.is_empty() { Json::Null } else { Json::String(u.email.clone()) },
    })
}

async fn lookup(State(s): State<Arc<Shared>>, UrlPath(id): UrlPath<String>) -> Response {
    let st = s.lock();
    match st.users.values().find(|u| u.employee_id == id) {
        Some(u) => json_response(200, user_json(u)),
        None => json_response(404, json!({"error": "not_found"})),
    }
}

#[derive(Deserialize, Default)]
struct SendBody {
    #[serde(default)]
    channel: Option<String>,
}

/// `a…@example.com`
fn mask_email(e: &str) -> String {
    match e.split_once('@') {
        Some((local, domain)) => {
            format!("{}…@{domain}", local.chars().next().unwrap_or('?'))
        }
        None => "…".to_string(),
    }
}

async fn send_otp(
    State(s): State<Arc<Shared>>,
    UrlPath(user_id): UrlPath<String>,
    body: Option<JsonBody<SendBody>>,
) -> Response {
    let now = Instant::now();
    let opts = &s.options;
    let (channel, to, code) = {
        let mut st = s.lock();
        let Some(user) = st.users.get(&user_id).cloned() else {
            return json_response(404, json!({"error": "not_found"}));
        };
        if let Some(last) = st.last_send.get(&user_id) {
            let since = now.saturating_duration_since(*last);
            if since < opts.resend_window {
                let wait = (opts.resend_window - since).as_secs().max(1);
                return json_response(429, json!({"error": "resend_window", "retryAfter": wait}));
            }
        }
        let channel = body
            .and_then(|b| b.0.channel)
            .filter(|c| matches!(c.as_str(), "sms" | "email"))
            .unwrap_or_else(|| user.factor.clone());
        let to = match channel.as_str() {
            "email" if !user.email.is_empty() => mask_email(&user.email),
            "sms" if !user.mobile.is_empty() => format!("…{}", last4_of(&user.mobile)),
            _ => return json_response(400, json!({"error": "no_such_factor"})),
        };
        let code = opts.fixed_code.clone().unwrap_or_else(|| random_code(6));
        st.otps.insert(
            user_id.clone(),
            Otp {
                code: code.clone(),
                issued: now,
                checks: 0,
            },
        );
        st.last_send.insert(user_id.clone(), now);
        st.sent.push(SentCode {
            user_id: user_id.clone(),
            channel: channel.clone(),
            code: code.clone(),
        });
        (channel, to, code)
    };
    if opts.print_codes {
        let delay = opts.sms_delay;
        let label = if channel == "email" {
            "DEMO EMAIL"
        } else {
            "DEMO SMS"
        };
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // The demo's stand-in for a phone: deliberately stdout, not a log.
            println!("[{label}] to {to}: your code is {code}");
        });
    }
    json_response(202, json!({"status": "sent", "channel": channel}))
}

#[derive(Deserialize)]
struct VerifyBody {
    code: String,
}

async fn verify_otp(
    State(s): State<Arc<Shared>>,
    UrlPath(user_id): UrlPath<String>,
    body: Option<JsonBody<VerifyBody>>,
) -> Response {
    let now = Instant::now();
    let Some(JsonBody(body)) = body else {
        return json_response(400, json!({"error": "bad_request"}));
    };
    let mut st = s.lock();
    let ttl = s.options.code_ttl;
    let max = s.options.max_checks;
    let Some(otp) = st.otps.get_mut(&user_id) else {
        return json_response(410, json!({"error": "expired"}));
    };
    if now.saturating_duration_since(otp.issued) > ttl {
        st.otps.remove(&user_id);
        return json_response(410, json!({"error": "expired"}));
    }
    if otp.checks >= max {
        return json_response(429, json!({"error": "too_many_attempts"}));
    }
    otp.checks += 1;
    if same(&otp.code, &body.code) {
        st.otps.remove(&user_id);
        st.verified_until.insert(user_id, now + VERIFIED_FOR);
        json_response(200, json!({"status": "approved"}))
    } else {
        json_response(401, json!({"status": "pending", "error": "invalid_code"}))
    }
}

#[derive(Deserialize)]
struct PinBody {
    pin: String,
}

async fn reset_pin(
    State(s): State<Arc<Shared>>,
    UrlPath(user_id): UrlPath<String>,
    body: Option<JsonBody<PinBody>>,
) -> Response {
    let now = Instant::now();
    let Some(JsonBody(body)) = body else {
        return json_response(400, json!({"errorCode": "BAD_REQUEST"}));
    };
    let mut st = s.lock();
    let Some(user) = st.users.get(&user_id) else {
        return json_response(404, json!({"errorCode": "NOT_FOUND"}));
    };
    if user.is_locked() {
        return json_response(423, json!({"errorCode": "LOCKED_OUT"}));
    }
    let verified = st
        .verified_until
        .get(&user_id)
        .is_some_and(|until| now < *until);
    if s.options.require_verified_code && !verified {
        return json_response(403, json!({"errorCode": "NOT_VERIFIED"}));
    }
    match pin_policy(&body.pin, &user.pin_history) {
        PinVerdict::TooSimple => json_response(
            400,
            json!({"errorCode": "PIN_TOO_SIMPLE",
                   "message": "A PIN is 6 digits, not all the same and not a run like 123456."}),
        ),
        PinVerdict::Reused => json_response(
            400,
            json!({"errorCode": "PIN_REUSED", "message": "That PIN was used recently."}),
        ),
        PinVerdict::Ok => {
            st.verified_until.remove(&user_id);
            if let Some(u) = st.users.get_mut(&user_id) {
                u.pin_history.push(body.pin.clone());
            }
            json_response(200, json!({"status": "reset"}))
        }
    }
}

async fn audit(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Option<JsonBody<Json>>,
) -> Response {
    let Some(JsonBody(record)) = body else {
        return json_response(400, json!({"error": "bad_request"}));
    };
    let id = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| record.get("id").and_then(Json::as_str).map(str::to_string));
    let Some(id) = id.filter(|i| !i.is_empty()) else {
        return json_response(400, json!({"error": "record has no id"}));
    };
    let mut st = s.lock();
    if st.audit_failures > 0 {
        st.audit_failures -= 1;
        return json_response(503, json!({"error": "unavailable"}));
    }
    if !st.audit_ids.insert(id) {
        return json_response(200, json!({"status": "duplicate"}));
    }
    st.audit.push(record);
    json_response(201, json!({"status": "stored"}))
}

/// The `actions:` map (name → action) wiring the SSPR flow to a demo
/// backend at `base_url` (e.g. `http://127.0.0.1:8085`).
///
/// Flow variables read: `employee_id`; `user_id` and `factor` (outputs of
/// `lookup_user`); `otp` and `new_pin` (secrets, only in the secure
/// actions); the audit record fields for `audit`.
pub fn demo_actions_yaml(base_url: &str) -> String {
    let doc: serde_yaml::Value = serde_yaml::from_str(EXAMPLE_CONFIG).unwrap_or_default();
    let actions = doc.get("actions").cloned().unwrap_or_default();
    serde_yaml::to_string(&actions)
        .unwrap_or_default()
        .replace(EXAMPLE_BASE, base_url.trim_end_matches('/'))
}

/// [`demo_actions_yaml`] parsed.
pub fn demo_actions(base_url: &str) -> Result<BTreeMap<String, ActionConfig>, ActionError> {
    serde_yaml::from_str(&demo_actions_yaml(base_url)).map_err(|e| ActionError::Yaml(e.to_string()))
}

/// The example config, whose `actions:` wire the SSPR flow to this backend.
const EXAMPLE_CONFIG: &str = include_str!("../../config.example.yaml");

/// Where `config.example.yaml` expects the demo backend.
const EXAMPLE_BASE: &str = "http://127.0.0.1:8089";
