//! Running actions: render, send, retry, read, decide.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use serde_json::Value as Json;

use super::config::{literal_origin, ActionConfig, ActionInfo, AuthKind, Origin, TlsConfig};
use super::outcome::{decide, Rule};
use super::render::RequestTemplates;
use super::selector::{extract, Selector};
use super::{ActionError, OUTCOME_ERROR, OUTCOME_TIMEOUT};
use crate::secret::{Secret, SecretBuf};
use crate::vars::Vars;

/// Responses larger than this end in `error` (a directory answer is small).
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Upper bound of one retry backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What one run of an action produced.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionResult {
    pub outcome: String,
    /// Plain variables read from the response (only those present).
    pub outputs: Vars,
    /// Status of the last HTTP response, if one arrived.
    pub status: Option<u16>,
    /// Wall time of the whole run, retries included.
    pub latency: Duration,
}

enum ResolvedAuth {
    Bearer(Secret),
    Basic(Secret, Secret),
    Header(HeaderName, Secret),
}

struct Compiled {
    config: ActionConfig,
    /// URL, header and body templates, compiled here once.
    request: RequestTemplates,
    origin: Origin,
    auth: Option<ResolvedAuth>,
    /// Own client when the action has `tls:` settings; else the shared one.
    client: Option<reqwest::Client>,
    outputs: Vec<(String, Selector)>,
    rules: Vec<Rule>,
    info: ActionInfo,
}

/// Runs configured actions. Cheap to share behind an `Arc`.
pub struct Executor {
    client: reqwest::Client,
    actions: BTreeMap<String, Compiled>,
}

/// One attempt's result before rules are applied.
enum Attempt {
    Timeout,
    /// Connection refused/reset, TLS failure, oversized body… (a fixed token).
    Failed(&'static str),
    Response {
        status: u16,
        /// Zeroed when dropped: a secure action's answer may be secret.
        body: SecretBuf,
    },
}

impl Executor {
    /// Validate every action and read its credentials from the process
    /// environment.
    pub fn new(actions: BTreeMap<String, ActionConfig>) -> Result<Self, ActionError> {
        Self::with_env(actions, |var| std::env::var(var).ok())
    }

    /// As [`Executor::new`], with the environment supplied by `env` (tests,
    /// or a secrets manager).
    pub fn with_env(
        actions: BTreeMap<String, ActionConfig>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ActionError> {
        let mut compiled = BTreeMap::new();
        for (name, config) in actions {
            config.validate(&name)?;
            let request = RequestTemplates::compile(&name, &config)?;
            let bad = |message: String| ActionError::Config {
                action: name.clone(),
                message,
            };
            let origin = literal_origin(&config.url).map_err(bad)?;
            let read = |var: &str| {
                env(var)
                    .filter(|v| !v.is_empty())
                    .map(Secret::new)
                    .ok_or_else(|| ActionError::MissingEnv {
                        action: name.clone(),
                        var: var.to_string(),
                    })
            };
            let auth = match &config.auth {
                None => None,
                Some(a) => Some(match a.kind().map_err(bad)? {
                    AuthKind::Bearer { env } => ResolvedAuth::Bearer(read(env)?),
                    AuthKind::Basic {
                        username_env,
                        password_env,
                    } => ResolvedAuth::Basic(read(username_env)?, read(password_env)?),
                    AuthKind::Header {
                        name: h,
                        value_env,
                        prefix,
                    } => {
                        let value = read(value_env)?;
                        let header = HeaderName::from_bytes(h.as_bytes())
                            .map_err(|_| bad(format!("auth header {h:?} is not a header name")))?;
                        let full = Secret::new(format!("{prefix}{}", value.expose()));
                        if HeaderValue::from_str(full.expose()).is_err() {
                            return Err(bad(format!(
                                "the value of {value_env} is not a valid header value"
                            )));
                        }
                        ResolvedAuth::Header(header, full)
                    }
                }),
            };
            let outputs = config
                .outputs
                .iter()
                .map(|(var, sel)| Selector::parse(sel).map(|s| (var.clone(), s)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?;
            let rules = config
                .outcomes
                .iter()
                .map(Rule::compile)
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?;
            let client = match &config.tls {
                None => None,
                Some(tls) => Some(tls_client(tls).map_err(bad)?),
            };
            let info = config.info();
            compiled.insert(
                name.clone(),
                Compiled {
                    config,
                    request,
                    origin,
                    auth,
                    client,
                    outputs,
                    rules,
                    info,
                },
            );
        }
        let client = client_builder()
            .build()
            .map_err(|e| ActionError::Client(e.to_string()))?;
        Ok(Executor {
            client,
            actions: compiled,
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.actions.contains_key(name)
    }

    pub fn info(&self, name: &str) -> Option<&ActionInfo> {
        self.actions.get(name).map(|c| &c.info)
    }

    /// Every action's info, for building the flow validator's catalog.
    pub fn infos(&self) -> BTreeMap<String, ActionInfo> {
        self.actions
            .iter()
            .map(|(n, c)| (n.clone(), c.info.clone()))
            .collect()
    }

    /// Run action `name` against `vars`. Never fails: problems are the
    /// `timeout` and `error` outcomes.
    pub async fn run(&self, name: &str, vars: &Vars) -> ActionResult {
        let started = Instant::now();
        let Some(action) = self.actions.get(name) else {
            tracing::warn!(action = name, "unknown data action");
            return finish(name, OUTCOME_ERROR.into(), Vars::new(), None, started);
        };
        let request = match self.build(name, action, vars) {
            Ok(r) => r,
            Err(why) => {
                tracing::warn!(action = name, problem = %why, "data action request not built");
                return finish(name, OUTCOME_ERROR.into(), Vars::new(), None, started);
            }
        };
        let cfg = &action.config;
        let retryable = cfg.method.is_idempotent() || cfg.idempotency_header.is_some();
        let attempts = if retryable { cfg.retries + 1 } else { 1 };
        let mut backoff = cfg.retry_backoff;
        let mut last = Attempt::Failed("no attempt");
        for attempt in 1..=attempts {
            let Some(req) = request.try_clone() else {
                break;
            };
            last = self.attempt(self.client_of(action), req, cfg.timeout).await;
            let again = match &last {
                Attempt::Timeout | Attempt::Failed(_) => true,
                Attempt::Response { status, .. } => matches!(status, 502..=504),
            };
            if !again || attempt == attempts {
                break;
            }
            tracing::debug!(
                action = name,
                attempt,
                problem = attempt_token(&last),
                "data action retrying"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        match last {
            Attempt::Timeout => finish(name, OUTCOME_TIMEOUT.into(), Vars::new(), None, started),
            Attempt::Failed(why) => {
                tracing::debug!(action = name, problem = why, "data action failed");
                finish(name, OUTCOME_ERROR.into(), Vars::new(), None, started)
            }
            Attempt::Response { status, body } => {
                let body = body.as_bytes();
                let doc: Option<Json> = if body.iter().all(u8::is_ascii_whitespace) {
                    None
                } else {
                    serde_json::from_slice(body).ok()
                };
                let bad_json = doc.is_none() && !body.iter().all(u8::is_ascii_whitespace);
                if bad_json && (200..300).contains(&status) && !action.outputs.is_empty() {
                    tracing::debug!(action = name, status, "data action response is not JSON");
                    return finish(
                        name,
                        OUTCOME_ERROR.into(),
                        Vars::new(),
                        Some(status),
                        started,
                    );
                }
                let outcome = decide(&action.rules, status, doc.as_ref());
                let mut outputs = doc
                    .as_ref()
                    .map(|d| extract(&action.outputs, d))
                    .unwrap_or_default();
                for (var, value) in &cfg.defaults {
                    if outputs.get(var).is_none() {
                        outputs.set_plain(var.clone(), value.clone());
                    }
                }
                finish(name, outcome, outputs, Some(status), started)
            }
        }
    }

    /// Render the request. Errors are fixed descriptions without values.
    fn build(
        &self,
        _name: &str,
        action: &Compiled,
        vars: &Vars,
    ) -> Result<reqwest::Request, String> {
        let cfg = &action.config;
        let secure = cfg.secure;
        let url_text = action.request.url(vars, secure)?;
        let url = url_text
            .as_str()
            .and_then(|u| reqwest::Url::parse(u).ok())
            .ok_or_else(|| "url does not parse".to_string())?;
        drop(url_text);
        // The host was literal in the template; make sure rendering kept it.
        let https = url.scheme() == "https";
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        let default_port = if action.origin.https { 443 } else { 80 };
        if https != action.origin.https
            || host != action.origin.host
            || url.port_or_known_default() != Some(action.origin.port.unwrap_or(default_port))
        {
            return Err("rendered url changed scheme, host or port".into());
        }
        let mut builder = self
            .client_of(action)
            .request(cfg.method.as_reqwest(), url)
            .timeout(cfg.timeout);
        for header in action.request.headers(vars, secure) {
            let (name, hv) = header?;
            builder = builder.header(name, hv);
        }
        if let Some(body) = action.request.body(vars, secure)? {
            builder = builder
                .header(CONTENT_TYPE, body.content_type)
                .body(body.bytes);
        }
        builder = match &action.auth {
            None => builder,
            Some(ResolvedAuth::Bearer(t)) => builder.bearer_auth(t.expose()),
            Some(ResolvedAuth::Basic(u, p)) => builder.basic_auth(u.expose(), Some(p.expose())),
            Some(ResolvedAuth::Header(h, v)) => {
                let mut hv = HeaderValue::from_str(v.expose())
                    .map_err(|_| "auth header value invalid".to_string())?;
                hv.set_sensitive(true);
                builder.header(h.clone(), hv)
            }
        };
        builder
            .build()
            .map_err(|_| "request not buildable".to_string())
    }

    fn client_of<'a>(&'a self, action: &'a Compiled) -> &'a reqwest::Client {
        action.client.as_ref().unwrap_or(&self.client)
    }

    async fn attempt(
        &self,
        client: &reqwest::Client,
        req: reqwest::Request,
        timeout: Duration,
    ) -> Attempt {
        let work = async {
            let mut resp = match client.execute(req).await {
                Ok(r) => r,
                Err(e) if e.is_timeout() => return Attempt::Timeout,
                Err(e) if e.is_connect() => return Attempt::Failed("connect failed"),
                Err(_) => return Attempt::Failed("request failed"),
            };
            let status = resp.status().as_u16();
            let mut body = SecretBuf::default();
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                            return Attempt::Failed("response too large");
                        }
                        body.extend_from_slice(&chunk);
                    }
                    Ok(None) => break,
                    Err(e) if e.is_timeout() => return Attempt::Timeout,
                    Err(_) => return Attempt::Failed("response body failed"),
                }
            }
            Attempt::Response { status, body }
        };
        // reqwest's own timeout covers the body too; this is the backstop.
        match tokio::time::timeout(timeout + Duration::from_millis(50), work).await {
            Ok(a) => a,
            Err(_) => Attempt::Timeout,
        }
    }
}

/// Settings shared by every client: no redirects, no system proxy.
fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("sspr-ivr/", env!("CARGO_PKG_VERSION")))
        .https_only(false)
}

/// Read a PEM file named in `tls.<field>`; errors name the field and file.
fn read_pem(field: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("tls.{field} {}: cannot read: {e}", path.display()))
}

/// PEM certificates of `tls.<field>`: at least one, each well formed.
fn pem_certificates(field: &str, path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = read_pem(field, path)?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
        format!(
            "tls.{field} {}: not a valid PEM certificate file",
            path.display()
        )
    })?;
    if certs.is_empty() {
        return Err(format!(
            "tls.{field} {}: contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// A client for an action with `tls:` settings: the CA certificates are
/// trusted in addition to the built-in roots; the client certificate and
/// key, if any, are presented for mTLS. Every file is checked here, so a bad
/// file stops start-up with its name in the message.
fn tls_client(tls: &TlsConfig) -> Result<reqwest::Client, String> {
    let mut builder = client_builder();
    if let Some(path) = &tls.ca_file {
        let mut check = client_builder();
        for cert in pem_certificates("ca_file", path)? {
            check = check.add_root_certificate(cert.clone());
            builder = builder.add_root_certificate(cert);
        }
        // rustls parses the certificates when the client is built.
        check.build().map_err(|_| {
            format!(
                "tls.ca_file {}: a certificate in it is not a valid X.509 CA certificate",
                path.display()
            )
        })?;
    }
    if let (Some(cert_path), Some(key_path)) = (&tls.client_cert_file, &tls.client_key_file) {
        pem_certificates("client_cert_file", cert_path)?;
        let mut pem = read_pem("client_cert_file", cert_path)?;
        pem.push(b'\n');
        let key = read_pem("client_key_file", key_path)?;
        pem.extend_from_slice(&key);
        let key_problem = || {
            format!(
                "tls.client_key_file {}: not a PEM private key matching client_cert_file {}",
                key_path.display(),
                cert_path.display()
            )
        };
        let identity = reqwest::Identity::from_pem(&pem).map_err(|_| key_problem())?;
        builder = builder.identity(identity);
        return builder.build().map_err(|_| key_problem());
    }
    builder
        .build()
        .map_err(|e| format!("HTTP client with tls settings: {e}"))
}

fn attempt_token(a: &Attempt) -> &'static str {
    match a {
        Attempt::Timeout => "timeout",
        Attempt::Failed(why) => why,
        Attempt::Response { .. } => "server error",
    }
}

fn finish(
    name: &str,
    outcome: String,
    outputs: Vars,
    status: Option<u16>,
    started: Instant,
) -> ActionResult {
    let latency = started.elapsed();
    tracing::info!(
        action = name,
        outcome = %outcome,
        status = status.unwrap_or(0),
        latency_ms = latency.as_millis() as u64,
        "data action finished"
    );
    ActionResult {
        outcome,
        outputs,
        status,
        latency,
    }
}
