//! The service configuration (`config.yaml`): what to listen on, which flows
//! to run for which called user, the data actions, audit, recording, limits.
//!
//! Every table rejects unknown keys, and a broken file is reported with its
//! path, line and column (serde_yaml keeps them) so an operator can go
//! straight to the mistake. Relative paths are resolved against the
//! directory of the config file. `check` loads everything this module
//! describes — flows, prompts, action wiring — without opening a socket.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::actions::ratelimit::RateLimitConfig;
use crate::actions::ActionConfig;
use crate::caller::{TrustedPeers, UntrustedAnswer, WithheldPolicy};
use crate::codec::Codec;
use crate::flow::model::Flow;
use crate::flow::Catalog;
use crate::media::prompts::PromptCache;
use crate::media::{DtmfMode, RtpSource};
use crate::ops::logging::LogFormat;
use crate::sip::Transport;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Yaml {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
    #[error("{0}")]
    Flow(String),
    #[error("prompts: {0}")]
    Prompts(String),
    #[error("actions: {0}")]
    Actions(String),
    #[error("sip.tls: {0}")]
    Tls(String),
}

impl ConfigError {
    /// A value that parsed but is refused (`media.ptime_ms: use 10, 20, …`)
    /// gets the line and column of its key in `text`, as a parse error has
    /// (or of the nearest section, for a default the file never set).
    fn located(self, text: &str) -> ConfigError {
        let ConfigError::Invalid { file, message } = self else {
            return self;
        };
        let key = message.split(':').next().unwrap_or_default();
        let is_key = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        match is_key
            .then(|| crate::yaml_path::locate_nearest(text, key))
            .flatten()
        {
            Some((_, (line, column))) => ConfigError::Yaml {
                file,
                line,
                column,
                message,
            },
            None => ConfigError::Invalid { file, message },
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Address for SIP over UDP and TCP.
    pub listen: SocketAddr,
    pub transports: Vec<Transport>,
    /// Address written into Via/Contact; defaults to `listen`.
    pub advertised_addr: Option<SocketAddr>,
    pub user_agent: String,
    /// Send in-dialog requests to where the INVITE came from.
    pub symmetric_signalling: bool,
    /// SIP over TLS on its own port; off when absent.
    pub tls: Option<SipTlsConfig>,
    /// Trunks to register with (RFC 3261 §10): none by default.
    pub registrations: Vec<RegistrationConfig>,
    /// The proxies/SBCs allowed to send us calls (addresses or networks). Empty:
    /// anybody may call, and nobody's `P-Asserted-Identity` is believed.
    pub trusted_peers: TrustedPeers,
    /// Proxies in front of this instance (Kamailio's dispatcher), addresses or
    /// networks. From them, the per-source limits and the media trust count the
    /// address in their `X-Forwarded-For` header (the INVITE's real source), not
    /// the proxy's own. Empty (the default): the header is never believed.
    pub proxies: TrustedPeers,
    /// What a request from a peer not in `trusted_peers` gets (`reject`: INVITE
    /// → 403; `drop`: nothing at all).
    pub untrusted_requests: UntrustedAnswer,
    /// SIP TCP connections at once; more are closed at accept (lowered at
    /// start-up if the descriptor limit would not leave room for every call).
    pub tcp_max_connections: usize,
    /// SIP TCP connections at once from one IP address; more are closed at accept.
    pub tcp_max_connections_per_source: usize,
    /// Close a TCP connection that sent no complete message for this long and
    /// carries no call.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub tcp_idle_timeout: Duration,
    /// A message on a TCP connection must be complete (header section and body)
    /// this long after its first byte (slowloris).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub tcp_message_timeout: Duration,
    /// Bytes waiting to be written to one TCP connection; a peer that reads
    /// slower than that is disconnected.
    pub tcp_write_queue_bytes: usize,
    /// Server transactions kept at once (each absorbs retransmissions of one
    /// request for up to 32 s); the oldest finished ones go first, and a new
    /// request finding no room is answered 503 without one.
    pub max_server_transactions: usize,
    /// Bytes those transactions may hold (requests and last responses).
    pub max_server_transaction_bytes: usize,
}

impl SipConfig {
    /// Whether anything from `ip` is served at all: not under
    /// `untrusted_requests: drop` from a peer outside `trusted_peers`.
    pub fn serves(&self, ip: std::net::IpAddr) -> bool {
        self.untrusted_requests == UntrustedAnswer::Reject || self.trusted_peers.admits(ip)
    }
}

/// `sip.tls`: SIP over TLS (RFC 3261 §26, RFC 5630). The certificate, key and
/// client CA are read at start-up and again on every SIGHUP; the listening
/// address is fixed at start-up.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipTlsConfig {
    /// Where to accept TLS; default: `sip.listen`'s IP, port 5061.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Address written into Via/Contact of TLS messages; default: `listen`.
    #[serde(default)]
    pub advertised_addr: Option<SocketAddr>,
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf.
    pub key_file: PathBuf,
    /// PEM CA certificates: when set, every peer must present a certificate
    /// signed by one of them (mutual TLS, as some trunks require).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// A connection that has not finished its TLS handshake this long after
    /// accept is closed.
    #[serde(
        default = "SipTlsConfig::default_handshake_timeout",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub handshake_timeout: Duration,
    /// TLS connections at once (handshaking or established); more wait in the
    /// kernel's accept queue until one closes. Fixed at start-up.
    #[serde(default = "SipTlsConfig::default_max_connections")]
    pub max_connections: usize,
}

impl SipTlsConfig {
    pub const DEFAULT_PORT: u16 = 5061;

    fn default_handshake_timeout() -> Duration {
        Duration::from_secs(10)
    }

    fn default_max_connections() -> usize {
        2048
    }

    /// The address to accept TLS on, given `sip.listen`.
    pub fn listen_addr(&self, sip_listen: SocketAddr) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| SocketAddr::new(sip_listen.ip(), Self::DEFAULT_PORT))
    }
}

/// One `sip.registrations` entry: keep our Contact bound at a trunk's registrar.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Names the registration in logs and in the metrics' `trunk` label.
    pub name: String,
    /// Request-URI of the REGISTER (`sip:sip.example.net`); its host (resolved once
    /// at start-up) and port are where it goes, unless `outbound_proxy` is set.
    pub registrar: String,
    /// The address of record (To and From), e.g. `sip:+15550100@sip.example.net`.
    pub aor: String,
    /// The Contact to bind; default `sip:<aor user>@<sip.advertised_addr>`.
    #[serde(default)]
    pub contact: Option<String>,
    /// Digest user name; default the AOR's user part.
    #[serde(default)]
    pub username: Option<String>,
    /// The environment variable holding the password (never the password itself).
    pub password_env: String,
    /// Expiry asked for; refreshed after 80 % of what the registrar grants.
    #[serde(
        default = "default_expires",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub expires: Duration,
    /// `host:port` to send the REGISTER to instead of the registrar's host.
    #[serde(default)]
    pub outbound_proxy: Option<String>,
    /// `/readyz` reports not ready while this registration is not in place.
    #[serde(default = "default_true")]
    pub required: bool,
    /// First wait after a failed attempt; doubles up to `retry_max`.
    #[serde(
        default = "default_retry_min",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub retry_min: Duration,
    #[serde(
        default = "default_retry_max",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub retry_max: Duration,
}

fn default_expires() -> Duration {
    Duration::from_secs(3600)
}

fn default_true() -> bool {
    true
}

fn default_retry_min() -> Duration {
    Duration::from_secs(5)
}

fn default_retry_max() -> Duration {
    Duration::from_secs(300)
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: "127.0.0.1:5060".parse().expect("static address"),
            transports: vec![Transport::Udp, Transport::Tcp],
            advertised_addr: None,
            user_agent: concat!("sspr-ivr/", env!("CARGO_PKG_VERSION")).to_string(),
            symmetric_signalling: true,
            tls: None,
            registrations: Vec::new(),
            trusted_peers: TrustedPeers::default(),
            proxies: TrustedPeers::default(),
            untrusted_requests: UntrustedAnswer::Reject,
            tcp_max_connections: 2048,
            tcp_max_connections_per_source: 64,
            tcp_idle_timeout: Duration::from_secs(120),
            tcp_message_timeout: Duration::from_secs(10),
            tcp_write_queue_bytes: 64 * 1024,
            max_server_transactions: 20_000,
            max_server_transaction_bytes: 32 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSettings {
    /// Local address for RTP sockets (and the SDP `c=` line).
    pub rtp_ip: IpAddr,
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Codec preference for the answer.
    pub codecs: Vec<Codec>,
    pub ptime_ms: u32,
    pub dtmf_mode: DtmfMode,
    /// Latch RTP to where the caller's packets come from (NAT).
    pub symmetric_rtp: bool,
    /// Whose RTP a call accepts: `sdp` (the offer's `c=` address), `signalling`
    /// (the INVITE's source IP), or `any` (the first sender anywhere).
    pub accept_rtp_from: Vec<RtpSource>,
    /// End a call when no RTP arrives for this long (sipp sends none between
    /// key presses, so keep it generous).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub inactivity_timeout: Duration,
    /// The same while the caller has the call on hold (its offer said
    /// `sendonly`, `inactive` or `c=0.0.0.0`): a held phone sends nothing,
    /// or music only some of the time.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub hold_timeout: Duration,
    /// The telephone-event payload type offered on late-offer calls.
    pub telephone_event_pt: u8,
    /// SDES-SRTP: `off`, `optional` (default) or `required`; keys only over TLS.
    pub srtp: crate::media::srtp::SrtpPolicy,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            rtp_ip: "127.0.0.1".parse().expect("static address"),
            rtp_port_min: 20000,
            rtp_port_max: 29999,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            ptime_ms: 20,
            dtmf_mode: DtmfMode::Auto,
            symmetric_rtp: true,
            accept_rtp_from: vec![RtpSource::Sdp, RtpSource::Signalling],
            inactivity_timeout: Duration::from_secs(120),
            hold_timeout: Duration::from_secs(600),
            telephone_event_pt: 101,
            srtp: crate::media::srtp::SrtpPolicy::Optional,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptsConfig {
    pub dir: PathBuf,
    pub language: String,
}

impl Default for PromptsConfig {
    fn default() -> Self {
        PromptsConfig {
            dir: PathBuf::from("prompts"),
            language: "en".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutesConfig {
    /// Flow for any Request-URI user not listed in `by_user`.
    pub default: String,
    /// Request-URI user → flow name.
    pub by_user: BTreeMap<String, String>,
    /// Flow for every caller whose number is withheld (`anonymous`, …), whatever
    /// they dialled, e.g. one that transfers straight to an agent. `None`: routed
    /// like everybody else.
    pub withheld: Option<String>,
}

impl Default for RoutesConfig {
    fn default() -> Self {
        RoutesConfig {
            default: "sspr".into(),
            by_user: BTreeMap::from([("echo".to_string(), "echo".to_string())]),
            withheld: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_calls: usize,
    /// Live calls from one source IP address (apart from the INVITE rate).
    pub max_calls_per_source: usize,
    /// New INVITEs per second accepted from one source address.
    pub invites_per_second_per_source: u32,
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub max_call_duration: Duration,
    /// `Retry-After` seconds on 503.
    pub retry_after_secs: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_calls: 1000,
            max_calls_per_source: 1000,
            invites_per_second_per_source: 200,
            max_call_duration: Duration::from_secs(900),
            retry_after_secs: 30,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransferConfig {
    /// Header carrying the transfer reason token on REFER.
    pub reason_header: String,
    /// Named transfer targets the flows refer to.
    pub targets: BTreeMap<String, String>,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            reason_header: "X-Transfer-Reason".into(),
            targets: BTreeMap::from([
                ("agent".to_string(), "sip:agents@127.0.0.1:5070".to_string()),
                (
                    "account_recovery".to_string(),
                    "sip:account-recovery@127.0.0.1:5070".to_string(),
                ),
            ]),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    pub spool_dir: PathBuf,
    /// The data action records are delivered through; none = spool only.
    pub action: Option<String>,
    /// A record the receiver rejects (4xx other than 408/425/429, or the
    /// outcome `rejected`) this many times in a row moves to the spool's
    /// dead-letter file, and delivery continues behind it; 0: never.
    pub dead_letter_after: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            spool_dir: PathBuf::from("var/audit"),
            action: Some("audit".into()),
            dead_letter_after: crate::audit::DEFAULT_DEAD_LETTER_AFTER,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingMode {
    /// Left: caller, right: IVR.
    Stereo,
    Mono,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    pub enabled: bool,
    pub dir: PathBuf,
    pub mode: RecordingMode,
    /// Per-call interaction timeline (JSON lines) next to the recording.
    pub timeline: bool,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            enabled: false,
            dir: PathBuf::from("var/recordings"),
            mode: RecordingMode::Stereo,
            timeline: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: "127.0.0.1:9090".parse().expect("static address"),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    pub format: LogFormat,
    /// tracing filter (`info`, `sspr_ivr=debug`); `RUST_LOG` overrides.
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// The action that starts a reset attempt (the directory lookup); it is
    /// rate limited per caller number and per account, across calls.
    pub lookup_action: String,
    /// The flow variable that names the account in that lookup.
    pub account_variable: String,
    /// Lookups per caller number (ANI) per hour.
    pub attempts_per_ani_per_hour: u32,
    /// Lookups per account per hour.
    pub attempts_per_account_per_hour: u32,
    /// The actions counted as OTP sends and OTP checks in the metrics. The
    /// send action is also held to the send budgets below.
    pub otp_send_action: String,
    pub otp_verify_action: String,
    /// The action that sets the new PIN. Its request is sent only after an
    /// `attempt_started` audit record for it is spooled (fsynced); when the
    /// spool cannot take one, the request is not sent and the action's
    /// outcome is `audit_unavailable`, which the flow must handle. `None`
    /// (YAML `null`): no action is guarded.
    pub reset_action: Option<String>,
    /// How calls with a withheld number count against `attempts_per_ani_per_hour`:
    /// `per_call` (each its own caller) or `shared` (one budget for all of them).
    pub withheld_callers: WithheldPolicy,
    /// Code sends one caller number (ANI) may trigger within `window`, across
    /// calls and accounts; over it, the send action's outcome is
    /// `rate_limited` and the backend is not asked. `max: 0`: no sends.
    pub otp_sends_per_ani: RateLimitConfig,
    /// Code sends by the whole service within `window` (its `max_keys` is
    /// not used): the backstop when caller numbers are spoofed.
    pub otp_sends_global: RateLimitConfig,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            lookup_action: "lookup_user".into(),
            account_variable: "employee_id".into(),
            attempts_per_ani_per_hour: 10,
            attempts_per_account_per_hour: 5,
            otp_send_action: "send_otp".into(),
            otp_verify_action: "verify_otp".into(),
            reset_action: Some("reset_pin".into()),
            withheld_callers: WithheldPolicy::PerCall,
            otp_sends_per_ani: RateLimitConfig {
                max: 6,
                window: Duration::from_secs(3600),
                max_keys: 100_000,
            },
            otp_sends_global: RateLimitConfig {
                max: 600,
                window: Duration::from_secs(3600),
                max_keys: 1,
            },
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DrainConfig {
    /// How long live calls may continue after SIGTERM.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub timeout: Duration,
}

impl Default for DrainConfig {
    fn default() -> Self {
        DrainConfig {
            timeout: Duration::from_secs(60),
        }
    }
}

/// The whole file.
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub sip: SipConfig,
    pub media: MediaSettings,
    pub prompts: PromptsConfig,
    /// Flow name → YAML file.
    pub flows: BTreeMap<String, PathBuf>,
    pub routes: RoutesConfig,
    pub limits: LimitsConfig,
    pub transfer: TransferConfig,
    pub actions: BTreeMap<String, ActionConfig>,
    /// Variables every call starts with (e.g. `enumeration_safe: "true"`).
    pub variables: BTreeMap<String, String>,
    pub audit: AuditConfig,
    pub recording: RecordingConfig,
    pub admin: AdminConfig,
    pub logging: LoggingConfig,
    pub security: SecurityConfig,
    pub drain: DrainConfig,
    /// Where the cross-call limits live (`memory`, or `redis` for several instances).
    pub state: crate::runtime::state::StateConfig,
    /// The file this was read from (messages point into it); not a key.
    #[serde(skip)]
    pub source: PathBuf,
}

impl Config {
    /// Parse YAML text; `file` is used for messages and relative paths.
    pub fn from_yaml(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            // serde_yaml ends its message with the location the prefix already gives.
            let message = e.to_string();
            let message = message
                .strip_suffix(&format!(" at line {line} column {column}"))
                .unwrap_or(&message)
                .to_string();
            ConfigError::Yaml {
                file: file.to_path_buf(),
                line,
                column,
                message,
            }
        })?;
        let base = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        cfg.source = file.to_path_buf();
        cfg.resolve_paths(&base);
        cfg.check_basic(file).map_err(|e| e.located(text))?;
        Ok(cfg)
    }

    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Config::from_yaml(&text, file)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.prompts.dir);
        for p in self.flows.values_mut() {
            fix(p);
        }
        fix(&mut self.audit.spool_dir);
        if let Some(tls) = &mut self.sip.tls {
            fix(&mut tls.cert_file);
            fix(&mut tls.key_file);
            if let Some(ca) = &mut tls.client_ca_file {
                fix(ca);
            }
        }
        fix(&mut self.recording.dir);
        for action in self.actions.values_mut() {
            if let Some(tls) = &mut action.tls {
                for p in [
                    &mut tls.ca_file,
                    &mut tls.client_cert_file,
                    &mut tls.client_key_file,
                ]
                .into_iter()
                .flatten()
                {
                    fix(p);
                }
            }
        }
    }

    fn check_basic(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            message,
        };
        if self.flows.is_empty() {
            return Err(invalid("`flows` lists no flow files".into()));
        }
        let known = |name: &str| self.flows.contains_key(name);
        if !known(&self.routes.default) {
            return Err(invalid(format!(
                "routes.default: flow `{}` is not listed under `flows`",
                self.routes.default
            )));
        }
        if let Some(flow) = self.routes.withheld.as_deref().filter(|f| !known(f)) {
            return Err(invalid(format!(
                "routes.withheld: flow `{flow}` is not listed under `flows`"
            )));
        }
        for (user, flow) in &self.routes.by_user {
            if !known(flow) {
                return Err(invalid(format!(
                    "routes.by_user.{user}: flow `{flow}` is not listed under `flows`"
                )));
            }
        }
        if self
            .sip
            .tls
            .as_ref()
            .is_some_and(|t| t.max_connections == 0)
        {
            return Err(invalid("sip.tls.max_connections: at least 1".into()));
        }
        if self.sip.transports.contains(&Transport::Tls) {
            return Err(invalid(
                "sip.transports: list udp and tcp only; TLS is turned on by a `sip.tls` section"
                    .into(),
            ));
        }
        if self.media.rtp_port_min > self.media.rtp_port_max || self.media.rtp_port_min == 0 {
            return Err(invalid(
                "media: rtp_port_min must be > 0 and ≤ rtp_port_max".into(),
            ));
        }
        if self.sip.tcp_max_connections_per_source == 0
            || self.sip.tcp_write_queue_bytes < 4096
            || self.sip.max_server_transactions == 0
            || self.sip.max_server_transaction_bytes < 64 * 1024
        {
            return Err(invalid(
                "sip: tcp_max_connections_per_source and max_server_transactions must be > 0, tcp_write_queue_bytes at least 4096, max_server_transaction_bytes at least 65536".into(),
            ));
        }
        // A wildcard listener has no address to give peers: Via and Contact
        // would say 0.0.0.0, and a trunk on another host could not send its
        // ACK or BYE anywhere.
        if self.sip.listen.ip().is_unspecified() && self.sip.advertised_addr.is_none() {
            return Err(invalid(format!(
                "sip.listen: {} listens on every address, so set sip.advertised_addr to \
                 the one peers reach (it goes in Via and Contact, where they send ACK and BYE)",
                self.sip.listen
            )));
        }
        if let Some(tls) = &self.sip.tls {
            let listen = tls.listen.map_or(self.sip.listen.ip(), |a| a.ip());
            if listen.is_unspecified()
                && tls.advertised_addr.is_none()
                && self.sip.advertised_addr.is_none()
            {
                return Err(invalid(
                    "sip.tls.listen: listens on every address, so set sip.tls.advertised_addr \
                     (or sip.advertised_addr) to the one peers reach"
                        .into(),
                ));
            }
        }
        let rtp_ip = self.media.rtp_ip;
        if rtp_ip.is_unspecified() || rtp_ip.is_multicast() {
            return Err(invalid(format!(
                "media.rtp_ip: {rtp_ip} is not an address a caller can send to; it is the \
                 SDP c= address of every call (0.0.0.0 there means hold, RFC 3264), so set \
                 this server's own address"
            )));
        }
        if self.media.accept_rtp_from.is_empty() {
            return Err(invalid(
                "media.accept_rtp_from: list at least one of sdp, signalling, any".into(),
            ));
        }
        if self.media.codecs.is_empty() {
            return Err(invalid("media.codecs: list at least one codec".into()));
        }
        if ![10, 20, 30, 40].contains(&self.media.ptime_ms) {
            return Err(invalid("media.ptime_ms: use 10, 20, 30 or 40".into()));
        }
        if self.media.inactivity_timeout < Duration::from_secs(10) {
            return Err(invalid(
                "media.inactivity_timeout: at least 10s (sipp sends no RTP between key presses)"
                    .into(),
            ));
        }
        if self.media.hold_timeout < self.media.inactivity_timeout {
            return Err(invalid(format!(
                "media.hold_timeout: at least media.inactivity_timeout ({}s): a held call is quieter than a live one",
                self.media.inactivity_timeout.as_secs()
            )));
        }
        for (key, budget) in [
            ("otp_sends_per_ani", &self.security.otp_sends_per_ani),
            ("otp_sends_global", &self.security.otp_sends_global),
        ] {
            if budget.window.is_zero() {
                return Err(invalid(format!(
                    "security.{key}.window: must be longer than 0s"
                )));
            }
        }
        if let Some(action) = &self.security.reset_action {
            if !self.actions.is_empty() && !self.actions.contains_key(action) {
                return Err(invalid(format!(
                    "security.reset_action: action `{action}` is not defined under `actions` \
                     (set it to null if no action resets a PIN)"
                )));
            }
        }
        for (i, r) in self.sip.registrations.iter().enumerate() {
            check_registration(i, r, &self.sip.registrations[..i]).map_err(invalid)?;
        }
        if let Some(action) = &self.audit.action {
            if !self.actions.contains_key(action) {
                return Err(invalid(format!(
                    "audit.action: action `{action}` is not defined under `actions`"
                )));
            }
        }
        Ok(())
    }

    /// The directory of the configured prompt language.
    pub fn prompt_dir(&self) -> PathBuf {
        self.prompts.dir.join(&self.prompts.language)
    }
}

/// One `sip.registrations[i]` entry: names, URIs and times that cannot work are
/// refused at load, with the key that holds them.
fn check_registration(
    i: usize,
    r: &RegistrationConfig,
    before: &[RegistrationConfig],
) -> Result<(), String> {
    let key = format!("sip.registrations[{i}]");
    let label_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    if !label_ok(&r.name) {
        return Err(format!(
            "{key}.name: use 1 to 64 letters, digits, `-`, `_` or `.` (it is a metric label)"
        ));
    }
    if before.iter().any(|o| o.name == r.name) {
        return Err(format!("{key}.name: `{}` is used twice", r.name));
    }
    let sip_uri = |field: &str, v: &str, needs_user: bool| {
        let ok = v.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("sip:"))
            && crate::sip::message::uri_hostport(v).is_some_and(|h| !h.is_empty())
            && !v.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
            && (!needs_user || !crate::sip::message::uri_user(v).is_empty());
        if ok {
            Ok(())
        } else {
            let what = if needs_user {
                "a sip: URI with a user part, e.g. `sip:+15550100@sip.example.net`"
            } else {
                "a sip: URI, e.g. `sip:sip.example.net`"
            };
            Err(format!("{key}.{field}: `{v}` is not {what}"))
        }
    };
    sip_uri("registrar", &r.registrar, false)?;
    sip_uri("aor", &r.aor, true)?;
    if let Some(c) = &r.contact {
        sip_uri("contact", c, true)?;
    }
    if r.password_env.is_empty() {
        return Err(format!(
            "{key}.password_env: name the environment variable that holds the password"
        ));
    }
    if r.expires < Duration::from_secs(10) || r.expires > Duration::from_secs(86_400) {
        return Err(format!("{key}.expires: between 10s and 24h"));
    }
    if r.retry_min.is_zero() || r.retry_max < r.retry_min {
        return Err(format!(
            "{key}: retry_min must be > 0 and retry_max at least retry_min"
        ));
    }
    Ok(())
}

/// Everything a call needs that is loaded once and shared: the config, the
/// prompt cache and the validated flows. Swapped atomically on reload.
pub struct Loaded {
    pub config: Config,
    pub prompts: Arc<PromptCache>,
    pub flows: BTreeMap<String, Arc<Flow>>,
    pub catalog: Catalog,
    /// `sip.tls`'s certificate, key and client CA, ready for handshakes; read
    /// again on every reload, so a rotated certificate is used by the next
    /// connection while established ones keep theirs.
    pub sip_tls: Option<Arc<crate::runtime::tls::ServerConfig>>,
}

/// Outcomes the runtime gives actions without asking the backend, added to
/// what their rules can produce so that flows must handle them:
/// `audit_unavailable` for the reset action (fail closed, see
/// `audit::AuditTrail`), `rate_limited` for the OTP send action (its send
/// budgets, `actions::budget`).
pub fn runtime_outcomes(config: &Config, actions: &mut BTreeMap<String, crate::flow::ActionInfo>) {
    let mut add = |action: &Option<String>, outcome: &str| {
        if let Some(info) = action.as_ref().and_then(|a| actions.get_mut(a)) {
            if !info.outcomes.iter().any(|o| o == outcome) {
                info.outcomes.push(outcome.to_string());
            }
        }
    };
    add(
        &config.security.reset_action,
        crate::audit::AUDIT_UNAVAILABLE,
    );
    add(
        &Some(config.security.otp_send_action.clone()),
        crate::actions::budget::RATE_LIMITED,
    );
}

impl Loaded {
    /// Load and validate everything; any problem is an error naming the file.
    pub fn from_config(config: Config) -> Result<Loaded, ConfigError> {
        let prompts = crate::files::load_prompts(&config.prompt_dir())
            .map_err(|e| ConfigError::Prompts(e.to_string()))?;
        let mut actions = BTreeMap::new();
        for (name, action) in &config.actions {
            actions.insert(name.clone(), action.info());
        }
        runtime_outcomes(&config, &mut actions);
        let catalog = Catalog {
            prompts: prompts.names().map(str::to_string).collect(),
            actions,
            transfer_targets: config.transfer.targets.keys().cloned().collect(),
        };
        let mut flows = BTreeMap::new();
        let mut problems = Vec::new();
        for (name, path) in &config.flows {
            match crate::files::load_flow(path) {
                Ok(flow) => {
                    let diags = crate::flow::validate::validate(&flow, path, &catalog);
                    if diags.is_empty() {
                        flows.insert(name.clone(), Arc::new(flow));
                    } else {
                        let placed = crate::findings::place(diags, &config);
                        problems.extend(placed.iter().map(|d| d.to_string()));
                    }
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::Flow(problems.join("\n")));
        }
        let sip_tls = match &config.sip.tls {
            Some(tls) => Some(
                crate::runtime::tls::server_config(tls)
                    .map_err(|e| ConfigError::Tls(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Loaded {
            config,
            prompts: Arc::new(prompts),
            flows,
            catalog,
            sip_tls,
        })
    }

    /// The flow for a Request-URI user; `routes.withheld` (when set) for a
    /// caller whose number is withheld.
    pub fn route(&self, user: &str, withheld: bool) -> (&str, Arc<Flow>) {
        let routes = &self.config.routes;
        let name = routes
            .withheld
            .as_ref()
            .filter(|_| withheld)
            .or_else(|| routes.by_user.get(user))
            .unwrap_or(&routes.default);
        let flow = self
            .flows
            .get(name)
            .or_else(|| self.flows.get(&self.config.routes.default))
            .expect("routes were validated against flows at load");
        (name.as_str(), flow.clone())
    }
}
