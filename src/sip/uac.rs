//! A minimal UAC for the `dial` test caller (RFC 3261 §13.2, §17.1, RFC 3515 as the
//! transferee): sends one INVITE with an SDP offer (or none, a late offer, answering
//! the 2xx's offer in the ACK), retransmits it on UDP (Timers A
//! and B), ACKs the 2xx (and every retransmission of it), ACKs non-2xx finals, sends
//! INFO DTMF and BYE (Timers E and F), and answers the server's BYE, OPTIONS, INFO and
//! REFER — a REFER gets `202` and then a NOTIFY with the sipfrag `SIP/2.0 200 OK`, or
//! `603` when refusing.
//!
//! Only IP-literal targets (`sip:user@127.0.0.1:5060`); no DNS, no authentication, no
//! forking (the first 2xx wins). The transport follows the target (RFC 3261 §19.1,
//! RFC 5630): `sips:` or `;transport=tls` is TLS, `;transport=tcp` TCP, else UDP;
//! on TCP and TLS nothing is retransmitted (Timers A and E are not started).
//! The runtime owns the connection and feeds what it reads.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::dialog::{contact_value, Dialog};
use super::message::{
    self, hostport_addr, uri_hostport, Datagram, Header, Message, NameAddr, StartLine,
};
use super::timer::{Timer, TimerTable};
use super::transaction::{backoff, response_to, server_key, set_body};
use super::validate::validate;
use super::{ByeReason, EndpointConfig, SipError, TokenRng, Transmit, Transport, ALLOW};

/// What the caller observes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UacEvent {
    Provisional(u16),
    Answered {
        sdp: String,
    },
    Failed(u16),
    ReferReceived {
        target: String,
        headers: Vec<(String, String)>,
    },
    /// The far end hung up; `reason` is its BYE's `Reason` (RFC 3326,
    /// [`super::peer_reason`]: control characters shown as `?`), if it gave one.
    ByeReceived {
        reason: Option<String>,
    },
    Terminated,
    /// Final status of an INFO we sent.
    Info {
        status: u16,
    },
    /// Final status of an UPDATE we sent, and the answer it carried.
    Updated {
        status: u16,
        sdp: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Calling,
    Proceeding,
    Confirmed,
    Terminated,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    Invite,
    Client(String),
    Server(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Bye,
    Info,
    Update,
    Notify,
    Cancel,
}

#[derive(Debug)]
struct ClientTx {
    purpose: Purpose,
    payload: Vec<u8>,
    interval: Duration,
    completed: bool,
}

/// Headers of a REFER that are not reported as extra headers.
const REFER_STANDARD: &[&str] = &[
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Contact",
    "Refer-To",
    "User-Agent",
    "Content-Length",
    "Route",
    "Record-Route",
    "Server",
];

/// The UAC. See the module docs.
#[derive(Debug)]
pub struct Uac {
    config: EndpointConfig,
    /// Call-ID, tags and branches (see [`TokenRng`]).
    rng: TokenRng,
    destination: SocketAddr,
    transport: Transport,
    from_user: String,
    call_id: String,
    invite: Message,
    invite_payload: Vec<u8>,
    invite_branch: String,
    invite_cseq: u32,
    invite_interval: Duration,
    state: State,
    dialog: Option<Dialog>,
    ack_payload: Option<Vec<u8>>,
    refuse_refer: bool,
    last_provisional: Option<u16>,
    clients: HashMap<String, ClientTx>,
    servers: HashMap<String, Vec<u8>>,
    timers: TimerTable<Owner>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<UacEvent>,
    /// Late offer ([`Uac::new_late_offer`]): builds the answer for the ACK
    /// from the offer in the 2xx.
    late_answer: Option<LateAnswer>,
}

/// Builds a late-offer call's answer (the ACK's body) from the offer in the 2xx.
pub struct LateAnswer(pub Box<dyn FnMut(&str) -> String + Send>);

impl std::fmt::Debug for LateAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LateAnswer")
    }
}

impl Uac {
    /// Build and send the INVITE. Fails if the target is not a `sip:` URI with an IP
    /// literal host.
    pub fn new(
        now: Instant,
        config: EndpointConfig,
        target_uri: &str,
        from_user: &str,
        offer_sdp: String,
        rng: TokenRng,
    ) -> Result<Self, SipError> {
        Self::start(now, config, target_uri, from_user, Ok(offer_sdp), rng)
    }

    /// Like [`Uac::new`], but a late offer (RFC 3261 §13.2.1): the INVITE has
    /// no body, the 2xx carries the callee's offer, and `answer` builds the
    /// answer the ACK carries (the same ACK for every retransmitted 2xx).
    pub fn new_late_offer(
        now: Instant,
        config: EndpointConfig,
        target_uri: &str,
        from_user: &str,
        answer: LateAnswer,
        rng: TokenRng,
    ) -> Result<Self, SipError> {
        Self::start(now, config, target_uri, from_user, Err(answer), rng)
    }

    /// `offer`: the INVITE's SDP, or (late offer) what builds the ACK's answer.
    fn start(
        now: Instant,
        config: EndpointConfig,
        target_uri: &str,
        from_user: &str,
        offer: Result<String, LateAnswer>,
        mut rng: TokenRng,
    ) -> Result<Self, SipError> {
        let target = target_uri.trim();
        let transport = target_transport(target).ok_or(SipError::BadTarget)?;
        let destination = uri_hostport(target)
            .and_then(hostport_addr)
            .ok_or(SipError::BadTarget)?;
        if !message::is_token(from_user) {
            return Err(SipError::BadTarget);
        }
        let call_id = format!("{}@{}", rng.token(20), config.local_addr.ip());
        let local_tag = rng.tag();
        let branch = rng.branch();
        let local = config.local_addr;
        let via = transport.via_name();
        let contact = if transport == Transport::Tls
            && target.len() > 5
            && target[..5].eq_ignore_ascii_case("sips:")
        {
            format!("<sips:{from_user}@{local}>")
        } else {
            contact_value(from_user, local, transport)
        };
        let mut invite = Message {
            start: StartLine::Request {
                method: "INVITE".into(),
                uri: target.to_string(),
                version: "SIP/2.0".into(),
            },
            headers: vec![
                Header::new(
                    "Via",
                    format!("SIP/2.0/{via} {local};branch={branch};rport"),
                ),
                Header::new("Max-Forwards", "70"),
                Header::new("From", format!("<sip:{from_user}@{local}>;tag={local_tag}")),
                Header::new("To", format!("<{target}>")),
                Header::new("Call-ID", call_id.clone()),
                Header::new("CSeq", "1 INVITE"),
                Header::new("Contact", contact),
                Header::new("Allow", ALLOW),
                Header::new("User-Agent", config.user_agent.clone()),
            ],
            body: Vec::new(),
        };
        let late_answer = match offer {
            Ok(sdp) => {
                set_body(&mut invite, "application/sdp", sdp.as_bytes());
                None
            }
            Err(answer) => Some(answer),
        };
        let payload = invite.to_bytes();
        let t1 = config.t1;
        let mut uac = Uac {
            rng,
            config,
            destination,
            transport,
            from_user: from_user.to_string(),
            call_id,
            invite,
            invite_payload: payload.clone(),
            invite_branch: branch,
            invite_cseq: 1,
            invite_interval: t1,
            state: State::Calling,
            dialog: None,
            ack_payload: None,
            refuse_refer: false,
            last_provisional: None,
            clients: HashMap::new(),
            servers: HashMap::new(),
            timers: TimerTable::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            late_answer,
        };
        uac.send(payload);
        if !transport.is_reliable() {
            uac.timers.set(Owner::Invite, Timer::A, now + t1);
        }
        uac.timers.set(Owner::Invite, Timer::B, now + t1 * 64);
        Ok(uac)
    }

    /// The Call-ID of this call.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Answer REFER with 603 instead of 202 + NOTIFY.
    pub fn refuse_refer(&mut self, refuse: bool) {
        self.refuse_refer = refuse;
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<UacEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// The transport the target asked for (every message of the call uses it).
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Where the INVITE goes (the target's IP and port).
    pub fn destination(&self) -> SocketAddr {
        self.destination
    }

    fn send(&mut self, payload: Vec<u8>) {
        self.transmits.push_back(Transmit {
            transport: self.transport,
            destination: self.destination,
            payload,
        });
    }

    fn terminate(&mut self) {
        if self.state != State::Terminated {
            self.state = State::Terminated;
            self.timers.stop(&Owner::Invite, Timer::A);
            self.timers.stop(&Owner::Invite, Timer::B);
            self.events.push_back(UacEvent::Terminated);
        }
    }

    /// End the call: BYE when answered, CANCEL while ringing.
    pub fn hangup(&mut self, now: Instant) {
        self.hangup_with(now, None);
    }

    /// [`Uac::hangup`], the BYE carrying `reason` (RFC 3326): say why when the
    /// answer cannot be used (RFC 3261 §13.2.2.4: ACK it, then BYE at once).
    pub fn hangup_with(&mut self, now: Instant, reason: Option<ByeReason>) {
        match self.state {
            State::Confirmed => {
                let extra = ByeReason::headers(reason);
                self.send_in_dialog(now, "BYE", Purpose::Bye, extra, None);
            }
            State::Calling | State::Proceeding => {
                // CANCEL: same branch, Call-ID, From, To and CSeq number as the INVITE.
                let mut cancel = self.invite.clone();
                if let StartLine::Request { method, .. } = &mut cancel.start {
                    *method = "CANCEL".into();
                }
                cancel.body.clear();
                cancel.headers.retain(|h| {
                    matches!(
                        h.name.as_str(),
                        "Via" | "Max-Forwards" | "From" | "To" | "Call-ID" | "CSeq" | "User-Agent"
                    )
                });
                for h in &mut cancel.headers {
                    if h.name == "CSeq" {
                        h.value = format!("{} CANCEL", self.invite_cseq);
                    }
                }
                let payload = cancel.to_bytes();
                self.start_client(
                    now,
                    format!("{}#cancel", self.invite_branch),
                    Purpose::Cancel,
                    payload,
                );
            }
            State::Terminated => {}
        }
    }

    /// Send one DTMF digit as INFO `application/dtmf-relay`.
    pub fn send_info(&mut self, now: Instant, digit: char, duration_ms: u32) {
        if self.state != State::Confirmed {
            return;
        }
        let body = format!("Signal={digit}\r\nDuration={duration_ms}\r\n");
        self.send_in_dialog(
            now,
            "INFO",
            Purpose::Info,
            Vec::new(),
            Some(("application/dtmf-relay", body)),
        );
    }

    /// Offer a new session description in the call (UPDATE, RFC 3311): a
    /// phone or gateway that moves its media, or puts the call on hold.
    pub fn update(&mut self, now: Instant, sdp: String) {
        if self.state != State::Confirmed {
            return;
        }
        let contact = Header::new(
            "Contact",
            format!("<sip:{}@{}>", self.from_user, self.config.local_addr),
        );
        self.send_in_dialog(
            now,
            "UPDATE",
            Purpose::Update,
            vec![contact],
            Some(("application/sdp", sdp)),
        );
    }

    fn send_in_dialog(
        &mut self,
        now: Instant,
        method: &str,
        purpose: Purpose,
        extra: Vec<Header>,
        body: Option<(&str, String)>,
    ) {
        let Some(dialog) = self.dialog.as_mut() else {
            return;
        };
        let (mut msg, branch) = dialog.request(
            method,
            self.rng.branch(),
            self.config.local_addr,
            &self.config.user_agent,
            None,
            extra,
        );
        if let Some((ct, b)) = body {
            set_body(&mut msg, ct, b.as_bytes());
        }
        let payload = msg.to_bytes();
        self.start_client(now, branch, purpose, payload);
    }

    fn start_client(&mut self, now: Instant, key: String, purpose: Purpose, payload: Vec<u8>) {
        self.send(payload.clone());
        let t1 = self.config.t1;
        self.clients.insert(
            key.clone(),
            ClientTx {
                purpose,
                payload,
                interval: t1,
                completed: false,
            },
        );
        if !self.transport.is_reliable() {
            self.timers
                .set(Owner::Client(key.clone()), Timer::E, now + t1);
        }
        self.timers.set(Owner::Client(key), Timer::F, now + t1 * 64);
    }

    pub fn handle_datagram(
        &mut self,
        now: Instant,
        _transport: Transport,
        source: SocketAddr,
        data: &[u8],
    ) {
        let Ok(Datagram::Message(parsed)) = message::parse(data) else {
            return;
        };
        if parsed.message.status().is_some() {
            if parsed.defect.is_none() {
                self.handle_response(now, parsed.message);
            }
            return;
        }
        let Ok(req) = validate(parsed.message, parsed.defect) else {
            return;
        };
        self.handle_request(now, source, req);
    }

    fn handle_response(&mut self, now: Instant, msg: Message) {
        let Some(code) = msg.status() else {
            return;
        };
        let Some(via) = msg.header("Via").and_then(message::Via::parse) else {
            return;
        };
        let Some(branch) = via.param("branch").map(str::to_string) else {
            return;
        };
        let cseq_method = msg
            .header("CSeq")
            .and_then(message::parse_cseq)
            .map(|(_, m)| m)
            .unwrap_or_default();
        if branch == self.invite_branch && cseq_method == "CANCEL" {
            let key = format!("{branch}#cancel");
            self.client_response(now, key, code, None);
            return;
        }
        if branch == self.invite_branch && cseq_method == "INVITE" {
            self.invite_response(now, code, msg);
            return;
        }
        let body = (!msg.body.is_empty()).then(|| String::from_utf8_lossy(&msg.body).into_owned());
        self.client_response(now, branch, code, body);
    }

    fn invite_response(&mut self, now: Instant, code: u16, msg: Message) {
        self.timers.stop(&Owner::Invite, Timer::A);
        if code < 200 {
            if self.state == State::Calling {
                self.state = State::Proceeding;
            }
            if self.state == State::Proceeding && self.last_provisional != Some(code) {
                self.last_provisional = Some(code);
                self.events.push_back(UacEvent::Provisional(code));
            }
            return;
        }
        if code < 300 {
            if let Some(ack) = self.ack_payload.clone() {
                // A retransmitted 2xx: our ACK was lost.
                self.send(ack);
                return;
            }
            if self.state == State::Terminated {
                return;
            }
            self.timers.stop(&Owner::Invite, Timer::B);
            let to = msg.header("To").unwrap_or_default().to_string();
            let remote_tag = NameAddr::parse(&to)
                .and_then(|n| n.tag().map(str::to_string))
                .unwrap_or_default();
            let local_party = self.invite.header("From").unwrap_or_default().to_string();
            let local_tag = NameAddr::parse(&local_party)
                .and_then(|n| n.tag().map(str::to_string))
                .unwrap_or_default();
            let mut dialog = Dialog {
                call_id: self.call_id.clone(),
                local_tag,
                remote_tag,
                local_party,
                remote_party: to,
                remote_target: msg
                    .header("Contact")
                    .and_then(NameAddr::parse)
                    .map(|n| n.uri),
                route_set: Dialog::route_set_from(&msg, true),
                local_cseq: self.invite_cseq,
                remote_cseq: 0,
                source: self.destination,
                transport: self.transport,
                secure: Dialog::is_secure(&self.invite, self.transport),
            };
            let (mut ack, _) = dialog.request(
                "ACK",
                self.rng.branch(),
                self.config.local_addr,
                &self.config.user_agent,
                Some(self.invite_cseq),
                Vec::new(),
            );
            if let Some(answer) = &mut self.late_answer {
                let body = (answer.0)(&String::from_utf8_lossy(&msg.body));
                set_body(&mut ack, "application/sdp", body.as_bytes());
            }
            let ack = ack.to_bytes();
            self.destination = dialog.destination(self.config.symmetric_signalling);
            self.dialog = Some(dialog);
            self.ack_payload = Some(ack.clone());
            self.send(ack);
            self.state = State::Confirmed;
            self.events.push_back(UacEvent::Answered {
                sdp: String::from_utf8_lossy(&msg.body).into_owned(),
            });
            return;
        }
        // Non-2xx final: ACK in the INVITE transaction (RFC 3261 §17.1.1.3).
        let mut ack = Message {
            start: StartLine::Request {
                method: "ACK".into(),
                uri: match &self.invite.start {
                    StartLine::Request { uri, .. } => uri.clone(),
                    StartLine::Response { .. } => String::new(),
                },
                version: "SIP/2.0".into(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        for name in ["Via", "Max-Forwards", "From", "Call-ID"] {
            if let Some(v) = self.invite.header(name) {
                ack.push(name, v);
            }
        }
        ack.push("To", msg.header("To").unwrap_or_default());
        ack.push("CSeq", format!("{} ACK", self.invite_cseq));
        self.send(ack.to_bytes());
        if self.state != State::Terminated {
            self.timers.stop(&Owner::Invite, Timer::B);
            self.timers
                .set(Owner::Invite, Timer::D, now + Duration::from_secs(32));
            self.events.push_back(UacEvent::Failed(code));
            self.terminate();
        }
    }

    fn client_response(&mut self, now: Instant, key: String, code: u16, body: Option<String>) {
        let Some(tx) = self.clients.get_mut(&key) else {
            return;
        };
        if code < 200 || tx.completed {
            return;
        }
        tx.completed = true;
        let purpose = tx.purpose;
        let owner = Owner::Client(key);
        self.timers.stop(&owner, Timer::E);
        self.timers.stop(&owner, Timer::F);
        self.timers.set(owner, Timer::K, now + self.config.t4);
        match purpose {
            Purpose::Bye => self.terminate(),
            Purpose::Info => self.events.push_back(UacEvent::Info { status: code }),
            Purpose::Update => self.events.push_back(UacEvent::Updated {
                status: code,
                sdp: body,
            }),
            Purpose::Notify | Purpose::Cancel => {}
        }
    }

    fn respond(
        &mut self,
        now: Instant,
        source: SocketAddr,
        req: &super::validate::Request,
        status: u16,
        extra: Vec<Header>,
    ) {
        let tag = self.dialog.as_ref().map(|d| d.local_tag.clone());
        let mut resp = response_to(
            &req.msg,
            source,
            status,
            tag.as_deref(),
            &self.config.user_agent,
        );
        resp.headers.extend(extra);
        let payload = resp.to_bytes();
        self.transmits.push_back(Transmit {
            transport: self.transport,
            destination: source,
            payload: payload.clone(),
        });
        let key = server_key(req);
        self.servers.insert(key.clone(), payload);
        self.timers
            .set(Owner::Server(key), Timer::J, now + self.config.t1 * 64);
    }

    fn handle_request(&mut self, now: Instant, source: SocketAddr, req: super::validate::Request) {
        if req.method == "ACK" {
            return;
        }
        if let Some(last) = self.servers.get(&server_key(&req)).cloned() {
            self.transmits.push_back(Transmit {
                transport: self.transport,
                destination: source,
                payload: last,
            });
            return;
        }
        let in_dialog = self.dialog.as_ref().is_some_and(|d| {
            req.call_id == d.call_id
                && req.to.tag() == Some(d.local_tag.as_str())
                && req.from.tag().unwrap_or_default() == d.remote_tag
        });
        if req.method == "OPTIONS" {
            self.respond(now, source, &req, 200, vec![Header::new("Allow", ALLOW)]);
            return;
        }
        if !in_dialog || self.state == State::Terminated {
            self.respond(now, source, &req, 481, Vec::new());
            return;
        }
        match req.method.as_str() {
            "BYE" => {
                self.respond(now, source, &req, 200, Vec::new());
                let reason = super::peer_reason(&req.msg);
                self.events.push_back(UacEvent::ByeReceived { reason });
                self.terminate();
            }
            "INFO" | "UPDATE" => self.respond(now, source, &req, 200, Vec::new()),
            "REFER" => {
                let target = req
                    .msg
                    .header("Refer-To")
                    .and_then(NameAddr::parse)
                    .map(|n| n.uri);
                let Some(target) = target else {
                    self.respond(now, source, &req, 400, Vec::new());
                    return;
                };
                let headers = req
                    .msg
                    .headers
                    .iter()
                    .filter(|h| {
                        !REFER_STANDARD
                            .iter()
                            .any(|s| s.eq_ignore_ascii_case(&h.name))
                    })
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect();
                if self.refuse_refer {
                    self.respond(now, source, &req, 603, Vec::new());
                } else {
                    self.respond(now, source, &req, 202, Vec::new());
                    let contact = match &self.dialog {
                        Some(d) => d.contact(&self.from_user, self.config.local_addr),
                        None => {
                            contact_value(&self.from_user, self.config.local_addr, self.transport)
                        }
                    };
                    let extra = vec![
                        Header::new("Event", "refer"),
                        Header::new("Subscription-State", "terminated;reason=noresource"),
                        Header::new("Contact", contact),
                    ];
                    self.send_in_dialog(
                        now,
                        "NOTIFY",
                        Purpose::Notify,
                        extra,
                        Some((
                            "message/sipfrag;version=2.0",
                            "SIP/2.0 200 OK\r\n".to_string(),
                        )),
                    );
                }
                self.events
                    .push_back(UacEvent::ReferReceived { target, headers });
            }
            _ => self.respond(now, source, &req, 405, vec![Header::new("Allow", ALLOW)]),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((owner, timer, deadline)) = self.timers.pop_expired(now) {
            match (owner, timer) {
                (Owner::Invite, Timer::A) => {
                    if self.state == State::Calling {
                        // Timer A doubles without the T2 cap (RFC 3261 §17.1.1.2).
                        self.invite_interval *= 2;
                        self.timers
                            .set(Owner::Invite, Timer::A, deadline + self.invite_interval);
                        let p = self.invite_payload.clone();
                        self.send(p);
                    }
                }
                (Owner::Invite, Timer::B) => {
                    if matches!(self.state, State::Calling | State::Proceeding) {
                        self.events.push_back(UacEvent::Failed(408));
                        self.terminate();
                    }
                }
                (Owner::Invite, _) => {}
                (Owner::Client(key), Timer::E) => {
                    let t2 = self.config.t2;
                    if let Some(tx) = self.clients.get_mut(&key) {
                        if !tx.completed {
                            tx.interval = backoff(tx.interval, t2);
                            let (next, p) = (deadline + tx.interval, tx.payload.clone());
                            self.timers.set(Owner::Client(key), Timer::E, next);
                            self.send(p);
                        }
                    }
                }
                (Owner::Client(key), Timer::F) => {
                    self.timers.stop(&Owner::Client(key.clone()), Timer::E);
                    if let Some(tx) = self.clients.remove(&key) {
                        match tx.purpose {
                            Purpose::Bye => self.terminate(),
                            Purpose::Info => self.events.push_back(UacEvent::Info { status: 408 }),
                            Purpose::Update => self.events.push_back(UacEvent::Updated {
                                status: 408,
                                sdp: None,
                            }),
                            Purpose::Notify | Purpose::Cancel => {}
                        }
                    }
                }
                (Owner::Client(key), _) => {
                    self.clients.remove(&key);
                }
                (Owner::Server(key), _) => {
                    self.servers.remove(&key);
                }
            }
        }
    }
}

/// The transport a target URI asks for, or `None` if it is not a SIP URI.
pub fn target_transport(target: &str) -> Option<Transport> {
    let lower = target.to_ascii_lowercase();
    if lower.starts_with("sips:") {
        return Some(Transport::Tls);
    }
    if !lower.starts_with("sip:") {
        return None;
    }
    let params = lower.split(['?', '>']).next().unwrap_or_default();
    Some(
        match params
            .split(';')
            .skip(1)
            .find_map(|p| p.strip_prefix("transport="))
        {
            Some("tls") => Transport::Tls,
            Some("tcp") => Transport::Tcp,
            _ => Transport::Udp,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_transport_follows_the_uri() {
        let cases = [
            ("sip:echo@127.0.0.1:5060", Some(Transport::Udp)),
            ("SIP:echo@127.0.0.1", Some(Transport::Udp)),
            (
                "sip:echo@127.0.0.1:5060;transport=tcp",
                Some(Transport::Tcp),
            ),
            (
                "sip:echo@127.0.0.1:5061;lr;transport=TLS",
                Some(Transport::Tls),
            ),
            ("sips:echo@127.0.0.1:5061", Some(Transport::Tls)),
            // A header part is not a URI parameter.
            ("sip:echo@127.0.0.1?x=transport=tls", Some(Transport::Udp)),
            ("tel:+15550100", None),
        ];
        for (uri, want) in cases {
            assert_eq!(target_transport(uri), want, "{uri}");
        }
    }

    #[test]
    fn a_tls_invite_says_tls_in_via_and_contact_and_is_not_retransmitted() {
        let now = Instant::now();
        let config = EndpointConfig::new("127.0.0.1:40000".parse().unwrap(), "t");
        let mut uac = Uac::new(
            now,
            config,
            "sips:echo@127.0.0.1:5061",
            "alice",
            "v=0\r\n".into(),
            TokenRng::from_seed([1; 32]),
        )
        .unwrap();
        let t = uac.poll_transmit().unwrap();
        assert_eq!(t.transport, Transport::Tls);
        let text = String::from_utf8(t.payload).unwrap();
        assert!(text.contains("Via: SIP/2.0/TLS 127.0.0.1:40000;"), "{text}");
        assert!(
            text.contains("Contact: <sips:alice@127.0.0.1:40000>"),
            "{text}"
        );
        // Only Timer B runs on a reliable transport.
        uac.handle_timeout(now + Duration::from_secs(10));
        assert!(uac.poll_transmit().is_none());
    }

    #[test]
    fn a_late_offer_invite_has_no_body_and_its_ack_carries_the_answer() {
        let now = Instant::now();
        let config = EndpointConfig::new("127.0.0.1:40000".parse().unwrap(), "t");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let answer = LateAnswer(Box::new(move |offer: &str| {
            log.lock().unwrap().push(offer.to_string());
            "v=0\r\nanswer\r\n".to_string()
        }));
        let mut uac = Uac::new_late_offer(
            now,
            config,
            "sip:echo@127.0.0.1:5060",
            "alice",
            answer,
            TokenRng::from_seed([2; 32]),
        )
        .unwrap();
        let invite = String::from_utf8(uac.poll_transmit().unwrap().payload).unwrap();
        assert!(invite.ends_with("Content-Length: 0\r\n\r\n"), "{invite}");
        assert!(!invite.contains("Content-Type"), "{invite}");
        let header = |name: &str| {
            invite
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap()
                .to_string()
        };
        let offer = "v=0\r\noffer\r\n";
        let ok = format!(
            "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: <sip:echo@127.0.0.1:5060>;tag=srv\r\n\
             Call-ID: {}\r\nCSeq: 1 INVITE\r\nContact: <sip:echo@127.0.0.1:5060>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}",
            header("Via"),
            header("From"),
            header("Call-ID"),
            offer.len()
        );
        let from: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        // The 2xx and a retransmission of it: the same ACK, built once.
        for _ in 0..2 {
            uac.handle_datagram(now, Transport::Udp, from, ok.as_bytes());
            let ack = String::from_utf8(uac.poll_transmit().unwrap().payload).unwrap();
            assert!(ack.starts_with("ACK "), "{ack}");
            assert!(ack.contains("Content-Type: application/sdp\r\n"), "{ack}");
            assert!(ack.ends_with("\r\n\r\nv=0\r\nanswer\r\n"), "{ack}");
        }
        assert_eq!(*seen.lock().unwrap(), [offer.to_string()]);
        assert!(matches!(
            uac.poll_event(),
            Some(UacEvent::Answered { sdp }) if sdp == offer
        ));
    }
}
