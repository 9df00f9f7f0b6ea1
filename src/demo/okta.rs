//! An Okta-management-API-shaped test server.
//!
//! Follows the public Okta Users and Factors API shapes:
//! - `Authorization: SSWS {token}` required, else 401 `E0000011`;
//! - `GET /api/v1/users/{id|login|login shortname}` → user with `status`
//!   (`ACTIVE`, `LOCKED_OUT`) and `profile.mobilePhone`; 404 `E0000007`.
//!   The user also carries `_embedded.factors` (the enrolled factors, as
//!   `GET /api/v1/users/{id}/factors` lists them) so one lookup yields the
//!   SMS factor id;
//! - `GET /api/v1/users/{id}/factors` → the factor list;
//! - `POST /api/v1/users/{id}/factors/{factorId}/verify` without a
//!   `passCode` issues an SMS challenge (200 `factorResult: CHALLENGE`, 429
//!   `E0000109` inside the resend window); with one, 200 `SUCCESS` or 403
//!   `E0000068` (wrong, expired or no challenge), 429 `E0000047` after five
//!   checks;
//! - `POST|PUT /api/v1/users/{id}` with `credentials.password.value` → 200
//!   user; 403 `E0000080` on policy failure (`errorCauses` say whether the
//!   password was too simple or used too recently); 403 `E0000069` when the
//!   user is locked out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json as JsonBody, Router};
use serde_json::{json, Value as Json};
use tokio::time::Instant;

use super::{
    json_response, pin_policy, random_code, same, DemoError, DemoUser, DemoUsers, PinVerdict,
    RecordedRequest, RequestLog, Server,
};

#[derive(Clone, Debug)]
pub struct OktaOptions {
    pub bind: SocketAddr,
    pub users: DemoUsers,
    /// The API token clients must send as `SSWS {token}`.
    pub api_token: String,
    pub resend_window: Duration,
    pub code_ttl: Duration,
    pub max_checks: u32,
}

impl Default for OktaOptions {
    fn default() -> Self {
        OktaOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            users: DemoUsers::embedded(),
            api_token: "00demo-okta-api-token".into(),
            resend_window: Duration::from_secs(30),
            code_ttl: Duration::from_secs(300),
            max_checks: 5,
        }
    }
}

struct Challenge {
    code: String,
    issued: Instant,
    checks: u32,
}

struct OktaState {
    users: Vec<DemoUser>,
    challenges: HashMap<String, Challenge>,
    last_send: HashMap<String, Instant>,
    sent: Vec<(String, String)>,
}

struct Shared {
    options: OktaOptions,
    state: Mutex<OktaState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, OktaState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct OktaShaped {
    server: Server,
    shared: Arc<Shared>,
    log: RequestLog,
}

fn okta_id(u: &DemoUser) -> String {
    format!("00u{}demo", u.employee_id)
}

fn factor_id(u: &DemoUser) -> String {
    match u.factor.as_str() {
        "email" => format!("emf{}demo", u.employee_id),
        _ => format!("mbl{}demo", u.employee_id),
    }
}

fn login(u: &DemoUser) -> String {
    format!("{}@example.com", u.employee_id)
}

fn find<'a>(users: &'a [DemoUser], key: &str) -> Option<&'a DemoUser> {
    users
        .iter()
        .find(|u| okta_id(u) == key || login(u) == key || u.employee_id == key)
}

fn factors_json(u: &DemoUser) -> Json {
    let f = match u.factor.as_str() {
        "email" => json!({"id": factor_id(u), "factorType": "email", "provider": "OKTA",
                          "vendorName": "OKTA", "status": "ACTIVE",
                          "profile": {"email": u.email}}),
        _ => json!({"id": factor_id(u), "factorType": "sms", "provider": "OKTA",
                    "vendorName": "OKTA", "status": "ACTIVE",
                    "profile": {"phoneNumber": u.mobile}}),
    };
    json!([f])
}

fn user_json(u: &DemoUser) -> Json {
    let (first, last) = u.name.split_once(' ').unwrap_or((&u.name, ""));
    let id = okta_id(u);
    json!({
        "id": id,
        "status": u.status,
        "created": "2024-01-15T09:00:00.000Z",
        "lastUpdated": "2026-01-15T09:00:00.000Z",
        "passwordChanged": "2026-01-15T09:00:00.000Z",
        "type": {"id": "otydemo"},
        "profile": {
            "firstName": first, "lastName": last,
            "login": login(u), "email": u.email,
            "mobilePhone": if u.mobile.is_empty() { Json::Null } else { Json::String(u.mobile.clone()) },
            "employeeNumber": u.employee_id,
        },
        "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
        "_embedded": {"factors": factors_json(u)},
        "_links": {"self": {"href": format!("/api/v1/users/{id}")}},
    })
}

/// Okta's error body.
fn okta_error(status: u16, code: &str, summary: &str, causes: &[&str]) -> Response {
    let id: u64 = rand::random();
    json_response(
        status,
        json!({
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": format!("oae{id:016x}"),
            "errorCauses": causes.iter().map(|c| json!({"errorSummary": c})).collect::<Vec<_>>(),
        }),
    )
}

fn authorized(s: &Shared, headers: &HeaderMap) -> bool {
    let want = format!("SSWS {}", s.options.api_token);
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| same(v, &want))
}

fn unauthorized() -> Response {
    okta_error(401, "E0000011", "Invalid token provided", &[])
}

fn not_found(key: &str) -> Response {
    okta_error(
        404,
        "E0000007",
        &format!("Not found: Resource not found: {key} (User)"),
        &[],
    )
}

impl OktaShaped {
    pub async fn start(options: OktaOptions) -> Result<Self, DemoError> {
        let bind = options.bind;
        let shared = Arc::new(Shared {
            state: Mutex::new(OktaState {
                users: options.users.users.clone(),
                challenges: HashMap::new(),
                last_send: HashMap::new(),
                sent: Vec::new(),
            }),
            options,
        });
        let router = Router::new()
            .route("/api/v1/users/:id", get(get_user).post(update_user).put(update_user))
            .route("/api/v1/users/:id/factors", get(list_factors))
            .route("/api/v1/users/:id/factors/:fid/verify", post(verify_factor))
            .with_state(shared.clone());
        let log = RequestLog::default();
        let server = Server::start(bind, router, log.clone()).await?;
        Ok(OktaShaped {
            server,
            shared,
            log,
        })
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn api_token(&self) -> &str {
        &self.shared.options.api_token
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.snapshot()
    }

    /// The newest SMS code challenged for Okta user id `user_id`.
    pub fn last_code(&self, user_id: &str) -> Option<String> {
        self.shared
            .lock()
            .sent
            .iter()
            .rev()
            .find(|(u, _)| u == user_id)
            .map(|(_, c)| c.clone())
    }

    /// Password history (oldest first) of the user with `employee_id`.
    pub fn password_history(&self, employee_id: &str) -> Option<Vec<String>> {
        self.shared
            .lock()
            .users
            .iter()
            .find(|u| u.employee_id == employee_id)
            .map(|u| u.pin_history.clone())
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

async fn get_user(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    UrlPath(key): UrlPath<String>,
) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let st = s.lock();
    match find(&st.users, &key) {
        Some(u) => json_response(200, user_json(u)),
        None => not_found(&key),
    }
}

async fn list_factors(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    UrlPath(key): UrlPath<String>,
) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let st = s.lock();
    match find(&st.users, &key) {
        Some(u) => json_response(200, factors_json(u)),
        None => not_found(&key),
    }
}

async fn verify_factor(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    UrlPath((key, fid)): UrlPath<(String, String)>,
    body: Option<JsonBody<Json>>,
) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let now = Instant::now();
    let opts = &s.options;
    let mut st = s.lock();
    let Some(user) = find(&st.users, &key).cloned() else {
        return not_found(&key);
    };
    if factor_id(&user) != fid {
        return okta_error(404, "E0000007", "Not found: Resource not found: factor (UserFactor)", &[]);
    }
    let id = okta_id(&user);
    let pass_code = body
        .as_ref()
        .and_then(|b| b.0.get("passCode"))
        .and_then(Json::as_str)
        .map(str::to_string);
    let Some(pass_code) = pass_code else {
        // Issue a challenge.
        if let Some(last) = st.last_send.get(&id) {
            if now.saturating_duration_since(*last) < opts.resend_window {
                return okta_error(
                    429,
                    "E0000109",
                    "An SMS message was recently sent. Please wait 30 seconds before trying again.",
                    &[],
                );
            }
        }
        let code = random_code(6);
        st.challenges.insert(
            id.clone(),
            Challenge {
                code: code.clone(),
                issued: now,
                checks: 0,
            },
        );
        st.last_send.insert(id.clone(), now);
        st.sent.push((id, code));
        return json_response(
            200,
            json!({"factorResult": "CHALLENGE", "factorType": user.factor,
                   "_links": {"verify": {"href": format!("/api/v1/users/{}/factors/{fid}/verify", okta_id(&user))}}}),
        );
    };
    let Some(ch) = st.challenges.get_mut(&id) else {
        return okta_error(403, "E0000068", "Invalid Passcode/Answer", &["Your passcode doesn't match our records. Please try again."]);
    };
    if now.saturating_duration_since(ch.issued) > opts.code_ttl {
        st.challenges.remove(&id);
        return okta_error(403, "E0000068", "Invalid Passcode/Answer", &["Your passcode doesn't match our records. Please try again."]);
    }
    if ch.checks >= opts.max_checks {
        return okta_error(429, "E0000047", "API call exceeded rate limit due to too many requests.", &[]);
    }
    ch.checks += 1;
    if same(&ch.code, &pass_code) {
        st.challenges.remove(&id);
        json_response(200, json!({"factorResult": "SUCCESS"}))
    } else {
        okta_error(403, "E0000068", "Invalid Passcode/Answer", &["Your passcode doesn't match our records. Please try again."])
    }
}

async fn update_user(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    UrlPath(key): UrlPath<String>,
    body: Option<JsonBody<Json>>,
) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let mut st = s.lock();
    let Some(idx) = st
        .users
        .iter()
        .position(|u| okta_id(u) == key || login(u) == key || u.employee_id == key)
    else {
        return not_found(&key);
    };
    let password = body
        .as_ref()
        .and_then(|b| b.0.pointer("/credentials/password/value"))
        .and_then(Json::as_str)
        .map(str::to_string);
    let Some(password) = password else {
        return okta_error(400, "E0000001", "Api validation failed: credentials", &["credentials: The request body was not well-formed."]);
    };
    if st.users[idx].is_locked() {
        return okta_error(403, "E0000069", "User Locked", &[]);
    }
    match pin_policy(&password, &st.users[idx].pin_history) {
        PinVerdict::TooSimple => okta_error(
            403,
            "E0000080",
            "The password does not meet the complexity requirements of the current password policy.",
            &["password: Password requirements were not met. Password requirements: 6 digits, not all the same, not a sequence."],
        ),
        PinVerdict::Reused => okta_error(
            403,
            "E0000080",
            "The password does not meet the complexity requirements of the current password policy.",
            &["password: Password has been used too recently"],
        ),
        PinVerdict::Ok => {
            st.users[idx].pin_history.push(password);
            json_response(200, user_json(&st.users[idx]))
        }
    }
}
