//! Outbound registration to a trunk (RFC 3261 §10.2), sans-IO: one [`Registration`]
//! keeps one binding of our Contact at one registrar alive.
//!
//! It sends REGISTER (To/From the address of record, one Call-ID for its whole life,
//! CSeq counting up, `Contact: <…>;expires=N` and `Expires: N`) as a non-INVITE client
//! transaction (Timers E and F on UDP, §17.1.2), answers a `401`/`407` with digest
//! credentials ([`super::digest`]; SHA-256 where offered), honours `423 Interval Too
//! Brief` (`Min-Expires`), takes the expiry the registrar granted (our Contact's
//! `expires` in the `200`, else `Expires`), and refreshes after 80 % of it. A refresh
//! reuses the last challenge (next `nc`) and answers a fresh one when the nonce went
//! stale. Failures (a final error, wrong credentials, Timer F) are retried after a
//! backoff that doubles from `retry_min` to `retry_max` (at least `Retry-After`).
//! [`Registration::unregister`] removes the binding (`expires=0`) on shutdown.
//!
//! Responses are matched by the Via branch of our current or recent requests, so the
//! runtime can offer every response it receives first to its registrations. Tags,
//! branches, the Call-ID and the client nonce come from the [`TokenRng`] it holds;
//! `now` comes in with every input. Not done here: DNS (the runtime hands in the
//! destination address), TCP/TLS, RFC 5626 outbound (flow tokens, keepalives), GRUU.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::digest::Challenge;
use super::message::{
    self, parse_cseq, split_list, uri_hostport, uri_user, Header, Message, NameAddr, StartLine,
};
use super::transaction::backoff;
use super::{EndpointConfig, TokenRng, Transmit, Transport, ALLOW};
use crate::secret::Secret;

/// How many recent branches are remembered to absorb late responses.
const RECENT_BRANCHES: usize = 8;
/// Challenges answered in a row before giving up on one attempt.
const MAX_CHALLENGES: u32 = 3;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What one registration needs; the password is already read from its environment
/// variable and the registrar's address already resolved.
#[derive(Clone, Debug)]
pub struct RegisterParams {
    /// For logs and metrics (`sip.registrations[].name`).
    pub name: String,
    /// The Request-URI of the REGISTER (`sip:registrar.example.net`).
    pub registrar: String,
    /// Where the REGISTER goes: the registrar or an outbound proxy.
    pub destination: SocketAddr,
    /// The address of record (To and From).
    pub aor: String,
    /// The Contact URI to bind.
    pub contact: String,
    pub username: String,
    pub password: Secret,
    /// Expiry asked for, in seconds.
    pub expires: u32,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// Where a registration stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationState {
    /// Not started yet.
    Idle,
    /// A REGISTER is in flight and no binding is known.
    Registering,
    /// Bound until `until` (a refresh may be in flight).
    Registered { until: Instant },
    /// The last attempt failed with `status` (`408` for no answer); the next is at `retry_at`.
    Failed { status: u16, retry_at: Instant },
    /// The un-REGISTER is in flight.
    Unregistering,
    /// Removed (or given up on) at shutdown; nothing more is sent.
    Unregistered,
}

/// What the runtime hears about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrationEvent {
    /// A `2xx`: bound for `expires` seconds.
    Registered { expires: u32 },
    /// An attempt failed with `status` (`401`/`407`: credentials refused; `408`: no
    /// answer); the next try is in `retry_in`.
    Failed { status: u16, retry_in: Duration },
    /// The un-REGISTER finished with `status` (`408` when unanswered), or there was
    /// nothing to remove (`0`).
    Unregistered { status: u16 },
}

/// The deadlines of one registration (one small table, as in quinn-proto).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deadline {
    /// Timer E: retransmit the REGISTER (UDP).
    Retransmit = 0,
    /// Timer F: give up on this transaction.
    Timeout = 1,
    /// Refresh before the binding expires, or retry after a failure.
    Next = 2,
}

/// The transaction in flight.
#[derive(Debug)]
struct Transaction {
    branch: String,
    cseq: u32,
    payload: Vec<u8>,
    interval: Duration,
    /// Expiry asked for (0 = un-REGISTER).
    expires: u32,
    /// The challenge (`(proxy, realm)`) answered for the first time in this request: a
    /// second non-stale challenge for it means the credentials were refused.
    fresh: Option<(bool, String)>,
    completed: bool,
}

/// One binding at one registrar. See the module docs.
#[derive(Debug)]
pub struct Registration {
    p: RegisterParams,
    local: SocketAddr,
    user_agent: String,
    t1: Duration,
    t2: Duration,
    rng: TokenRng,
    call_id: String,
    from_tag: String,
    cseq: u32,
    state: RegistrationState,
    tx: Option<Transaction>,
    recent: VecDeque<String>,
    /// The last challenge of each realm (registrar and proxy), reused on refresh.
    challenges: Vec<Challenge>,
    challenges_in_row: u32,
    /// Expiry to ask for (raised by a `423`).
    requested: u32,
    retry: Duration,
    deadlines: [Option<Instant>; 3],
    /// A `2xx` was ever received: there may be a binding to remove at shutdown.
    ever_bound: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<RegistrationEvent>,
}

impl Registration {
    /// A registration from `config.local_addr` (Via) with `config`'s timers.
    pub fn new(p: RegisterParams, config: &EndpointConfig, mut rng: TokenRng) -> Self {
        let call_id = format!("{}@{}", rng.token(20), config.local_addr.ip());
        let from_tag = rng.tag();
        Registration {
            requested: p.expires,
            retry: p.retry_min,
            p,
            local: config.local_addr,
            user_agent: config.user_agent.clone(),
            t1: config.t1,
            t2: config.t2,
            rng,
            call_id,
            from_tag,
            cseq: 0,
            state: RegistrationState::Idle,
            tx: None,
            recent: VecDeque::new(),
            challenges: Vec::new(),
            challenges_in_row: 0,
            deadlines: [None; 3],
            ever_bound: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.p.name
    }

    pub fn state(&self) -> RegistrationState {
        self.state
    }

    /// True while a binding is known to be in place.
    pub fn is_registered(&self) -> bool {
        matches!(self.state, RegistrationState::Registered { .. })
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<RegistrationEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Send the first REGISTER.
    pub fn start(&mut self, now: Instant) {
        if self.state == RegistrationState::Idle {
            self.state = RegistrationState::Registering;
            self.send(now, self.requested, None);
        }
    }

    /// Remove the binding (`expires=0`) if there may be one; stop retrying either way.
    pub fn unregister(&mut self, now: Instant) {
        if matches!(
            self.state,
            RegistrationState::Unregistering | RegistrationState::Unregistered
        ) {
            return;
        }
        self.deadlines = [None; 3];
        self.finish_transaction();
        if self.ever_bound {
            self.state = RegistrationState::Unregistering;
            self.challenges_in_row = 0;
            self.send(now, 0, None);
        } else {
            self.state = RegistrationState::Unregistered;
            self.events
                .push_back(RegistrationEvent::Unregistered { status: 0 });
        }
    }

    /// Offer a response; `true` when it belongs to this registration (it is then
    /// consumed, even if it was a late retransmission).
    pub fn handle_response(&mut self, now: Instant, msg: &Message) -> bool {
        let Some(code) = msg.status() else {
            return false;
        };
        let Some(branch) = msg
            .header("Via")
            .and_then(message::Via::parse)
            .and_then(|v| v.param("branch").map(str::to_string))
        else {
            return false;
        };
        let current = self.tx.as_ref().is_some_and(|t| t.branch == branch);
        if !current {
            return self.recent.contains(&branch);
        }
        let cseq_ok = msg
            .header("CSeq")
            .and_then(parse_cseq)
            .is_some_and(|(n, m)| {
                m.eq_ignore_ascii_case("REGISTER") && self.tx.as_ref().is_some_and(|t| t.cseq == n)
            });
        let Some(tx) = self.tx.as_mut().filter(|t| cseq_ok && !t.completed) else {
            return true;
        };
        if code < 200 {
            // Proceeding: retransmit at T2 from now on (RFC 3261 §17.1.2.2).
            tx.interval = self.t2;
            return true;
        }
        tx.completed = true;
        let (expires, fresh) = (tx.expires, tx.fresh.take());
        self.deadlines[Deadline::Retransmit as usize] = None;
        self.deadlines[Deadline::Timeout as usize] = None;
        match code {
            200..=299 if expires == 0 => self.unregistered(code),
            200..=299 => self.registered(now, msg),
            401 | 407 => self.challenged(now, msg, code, expires, fresh),
            423 if expires > 0 => {
                let min = msg
                    .header("Min-Expires")
                    .and_then(|v| v.trim().parse::<u32>().ok())
                    .filter(|m| *m > self.requested);
                match min {
                    Some(min) if self.challenges_in_row < MAX_CHALLENGES => {
                        self.challenges_in_row += 1;
                        self.requested = min;
                        self.send(now, min, None);
                    }
                    _ => self.failed(now, code, None),
                }
            }
            _ if expires == 0 => self.unregistered(code),
            _ => {
                let retry_after = msg
                    .header("Retry-After")
                    .and_then(|v| v.split([';', '(']).next()?.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                self.failed(now, code, retry_after);
            }
        }
        true
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due = |d: Option<Instant>| d.is_some_and(|t| t <= now);
        if due(self.deadlines[Deadline::Timeout as usize]) {
            self.deadlines[Deadline::Timeout as usize] = None;
            self.deadlines[Deadline::Retransmit as usize] = None;
            let unregistering = self.tx.as_ref().is_some_and(|t| t.expires == 0);
            self.finish_transaction();
            if unregistering {
                self.unregistered(408);
            } else {
                self.failed(now, 408, None);
            }
        }
        if let Some(at) = self.deadlines[Deadline::Retransmit as usize].filter(|t| *t <= now) {
            if let Some(tx) = self.tx.as_mut().filter(|t| !t.completed) {
                tx.interval = backoff(tx.interval, self.t2);
                self.deadlines[Deadline::Retransmit as usize] = Some(at + tx.interval);
                let payload = tx.payload.clone();
                self.push(payload);
            } else {
                self.deadlines[Deadline::Retransmit as usize] = None;
            }
        }
        if due(self.deadlines[Deadline::Next as usize]) {
            self.deadlines[Deadline::Next as usize] = None;
            self.challenges_in_row = 0;
            if matches!(self.state, RegistrationState::Failed { .. }) {
                self.state = RegistrationState::Registering;
            }
            self.send(now, self.requested, None);
        }
    }

    fn registered(&mut self, now: Instant, msg: &Message) {
        let granted = self.granted_expiry(msg).unwrap_or(self.requested);
        if granted == 0 {
            // The registrar kept no binding for us: count it as a failure.
            return self.failed(now, 500, None);
        }
        self.finish_transaction();
        self.ever_bound = true;
        self.challenges_in_row = 0;
        self.retry = self.p.retry_min;
        let lifetime = Duration::from_secs(u64::from(granted));
        self.state = RegistrationState::Registered {
            until: now + lifetime,
        };
        self.deadlines[Deadline::Next as usize] = Some(now + lifetime * 4 / 5);
        self.events
            .push_back(RegistrationEvent::Registered { expires: granted });
    }

    fn challenged(
        &mut self,
        now: Instant,
        msg: &Message,
        code: u16,
        expires: u32,
        fresh: Option<(bool, String)>,
    ) {
        let unregistering = expires == 0;
        let answerable = Challenge::from_response(msg).ok().filter(|c| {
            let refused = fresh.as_ref() == Some(&(c.is_proxy(), c.realm().to_string()));
            (!refused || c.is_stale()) && self.challenges_in_row < MAX_CHALLENGES
        });
        let Some(challenge) = answerable else {
            // The credentials we just sent were refused (or the challenge is unusable).
            self.challenges.clear();
            return if unregistering {
                self.unregistered(code)
            } else {
                self.failed(now, code, None)
            };
        };
        self.challenges_in_row += 1;
        let key = (challenge.is_proxy(), challenge.realm().to_string());
        self.challenges
            .retain(|c| (c.is_proxy(), c.realm()) != (key.0, key.1.as_str()));
        self.challenges.push(challenge);
        self.send(now, expires, Some(key));
    }

    fn failed(&mut self, now: Instant, status: u16, retry_after: Option<Duration>) {
        self.finish_transaction();
        let retry_in = self
            .retry
            .max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER));
        self.retry = backoff(self.retry, self.p.retry_max.max(self.p.retry_min));
        self.state = RegistrationState::Failed {
            status,
            retry_at: now + retry_in,
        };
        self.deadlines[Deadline::Next as usize] = Some(now + retry_in);
        self.events
            .push_back(RegistrationEvent::Failed { status, retry_in });
    }

    fn unregistered(&mut self, status: u16) {
        self.finish_transaction();
        self.deadlines = [None; 3];
        self.state = RegistrationState::Unregistered;
        self.events
            .push_back(RegistrationEvent::Unregistered { status });
    }

    /// Our Contact's `expires` in the 2xx, else its `Expires` header.
    fn granted_expiry(&self, msg: &Message) -> Option<u32> {
        let ours = |uri: &str| {
            uri_user(uri) == uri_user(&self.p.contact)
                && uri_hostport(uri).map(str::to_ascii_lowercase)
                    == uri_hostport(&self.p.contact).map(str::to_ascii_lowercase)
        };
        let from_contact = msg
            .headers_named("Contact")
            .flat_map(split_list)
            .filter_map(|c| NameAddr::parse(&c))
            .find(|c| ours(&c.uri))
            .and_then(|c| c.param("expires").and_then(|e| e.parse().ok()));
        from_contact.or_else(|| msg.header("Expires").and_then(|e| e.trim().parse().ok()))
    }

    /// The transaction is over: its branch still absorbs late retransmissions.
    fn finish_transaction(&mut self) {
        if let Some(tx) = self.tx.take() {
            self.remember(tx.branch);
        }
    }

    fn remember(&mut self, branch: String) {
        self.recent.push_back(branch);
        while self.recent.len() > RECENT_BRANCHES {
            self.recent.pop_front();
        }
    }

    /// Build and send one REGISTER asking for `expires` seconds, with credentials
    /// for every challenge kept.
    fn send(&mut self, now: Instant, expires: u32, fresh: Option<(bool, String)>) {
        self.finish_transaction();
        self.cseq += 1;
        let branch = self.rng.branch();
        let p = &self.p;
        let mut msg = Message {
            start: StartLine::Request {
                method: "REGISTER".into(),
                uri: p.registrar.clone(),
                version: "SIP/2.0".into(),
            },
            headers: vec![
                Header::new(
                    "Via",
                    format!("SIP/2.0/UDP {};branch={branch};rport", self.local),
                ),
                Header::new("Max-Forwards", "70"),
                Header::new("From", format!("<{}>;tag={}", p.aor, self.from_tag)),
                Header::new("To", format!("<{}>", p.aor)),
                Header::new("Call-ID", self.call_id.clone()),
                Header::new("CSeq", format!("{} REGISTER", self.cseq)),
                Header::new("Contact", format!("<{}>;expires={expires}", p.contact)),
                Header::new("Expires", expires.to_string()),
                Header::new("Allow", ALLOW),
                Header::new("User-Agent", self.user_agent.clone()),
            ],
            body: Vec::new(),
        };
        for challenge in &mut self.challenges {
            let cnonce = self.rng.token(16);
            msg.headers.push(challenge.authorize(
                "REGISTER",
                &p.registrar,
                &p.username,
                &p.password,
                &cnonce,
            ));
        }
        let payload = msg.to_bytes();
        self.push(payload.clone());
        self.tx = Some(Transaction {
            branch,
            cseq: self.cseq,
            payload,
            interval: self.t1,
            expires,
            fresh,
            completed: false,
        });
        self.deadlines[Deadline::Retransmit as usize] = Some(now + self.t1);
        self.deadlines[Deadline::Timeout as usize] = Some(now + self.t1 * 64);
    }

    fn push(&mut self, payload: Vec<u8>) {
        self.transmits.push_back(Transmit {
            transport: Transport::Udp,
            destination: self.p.destination,
            payload,
        });
    }
}

#[cfg(test)]
mod tests;
