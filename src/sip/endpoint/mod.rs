//! The UAS endpoint: demultiplexes datagrams to server and client transactions and
//! dialogs, and turns them into [`Event`]s for the application (RFC 3261 §8.2, §12–§17,
//! RFC 3515 REFER, RFC 3581 rport, RFC 6026 INVITE `Accepted` state).
//!
//! Every INVITE that passes validation gets `100 Trying` at once and one
//! [`Event::IncomingCall`]; the application answers with [`Command::Answer`] or
//! [`Command::Reject`]. Each call ends with exactly one [`Event::Terminated`].
//! Retransmitted requests are absorbed by their transaction and answered with the last
//! response — never reported twice. Incoming REFER is declined (603): an IVR transfers,
//! it is not transferred. INFO bodies other than `application/dtmf-relay` and
//! `application/dtmf` get 415; an INFO without a body gets 200. OPTIONS gets 200, in or
//! out of a dialog, except outside a dialog while the application takes no new calls
//! ([`Endpoint::set_accepting_calls`], draining): then 503, which is what Kamailio's
//! dispatcher probe needs to stop sending calls. Requests rejected by validation (400, 405, 415, …),
//! OPTIONS and 481s are answered statelessly (RFC 3261 §8.2.7), so a flood of them
//! builds no state. A non-refer NOTIFY gets 489; a NOTIFY, INFO, BYE or UPDATE outside
//! any dialog gets 481; an in-dialog request with a CSeq below the last one gets 500;
//! a re-INVITE while our 2xx is unacknowledged gets 491, and so does an UPDATE with an
//! offer while our offer in a 2xx waits for the ACK's answer (RFC 3311 §5.2).
//!
//! The code follows the transaction roles: [`invite_server`] (INVITE, ACK, CANCEL,
//! re-INVITE, the 2xx retransmissions of the UAS core), [`non_invite_server`] (BYE,
//! INFO, UPDATE, NOTIFY and the stateless answers), [`client`] (our BYE and REFER), and
//! [`bodies`] (the INFO and NOTIFY body formats). This file holds the shared state, the
//! demultiplexer and the timer dispatch.

mod bodies;
mod budget;
mod client;
mod invite_server;
mod non_invite_server;
mod session_timer;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::dialog::{contact_value, Dialog};
use super::message::{self, Datagram, Header, Message, Parsed};
use super::timer::{Timer, TimerTable};
use super::transaction::{
    backoff, response_to, server_key, ClientPurpose, ClientTransaction, ServerState,
    ServerTransaction,
};
use super::validate::{validate, Request};
use super::{
    ByeReason, CallKey, Command, EndReason, EndpointConfig, Event, ReferStatus, SipStats, TokenRng,
    Transmit, Transport, ACCEPT, ALLOW, SUPPORTED,
};

pub use bodies::{parse_dtmf, parse_dtmf_relay, sipfrag_status};

/// Contact user part of the IVR.
const CONTACT_USER: &str = "ivr";

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    Server(u64),
    Client(u64),
    Call(CallKey),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallState {
    /// IncomingCall reported, no final response yet.
    Offered,
    /// 2xx sent, waiting for ACK.
    Answered,
    Confirmed,
}

/// A 2xx the UAS core retransmits until ACK (RFC 3261 §13.3.1.4).
#[derive(Debug)]
struct Pending2xx {
    cseq: u32,
    payload: Vec<u8>,
    destination: SocketAddr,
    interval: Duration,
    initial: bool,
    /// The 2xx carries our offer (a re-INVITE came without one): the answer
    /// is in the ACK.
    offers: bool,
}

#[derive(Debug)]
struct Call {
    dialog: Dialog,
    state: CallState,
    invite_tx: u64,
    late_offer: bool,
    /// Our session description, reused for refreshes (re-INVITE, UPDATE).
    local_sdp: Option<String>,
    pending_2xx: Option<Pending2xx>,
    /// The session timer the INVITE being answered asks for (RFC 4028):
    /// granted by its 2xx.
    asked_timer: Option<session_timer::SessionTimer>,
    /// The session timer in force.
    session_timer: Option<session_timer::SessionTimer>,
}

/// The SIP UAS. See the module docs.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    timers: TimerTable<Owner>,
    next_id: u64,
    servers: HashMap<u64, ServerTransaction>,
    server_index: HashMap<String, u64>,
    clients: HashMap<u64, ClientTransaction>,
    client_index: HashMap<String, u64>,
    calls: HashMap<CallKey, Call>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: SipStats,
    /// Tags and branches (see [`TokenRng`]).
    rng: TokenRng,
    /// Bytes the server transactions hold (see [`budget`]).
    server_bytes: usize,
    /// Finished server transactions, oldest first: dropped first when room is needed.
    finished: VecDeque<u64>,
    /// False while the application takes no new calls (draining): an OPTIONS
    /// outside a dialog then gets 503, so a balancer's probe stops sending calls.
    accepting_calls: bool,
}

impl Endpoint {
    /// An endpoint drawing its tags and branches from `rng`.
    pub fn new(config: EndpointConfig, rng: TokenRng) -> Self {
        Endpoint {
            rng,
            server_bytes: 0,
            finished: VecDeque::new(),
            accepting_calls: true,
            config,
            timers: TimerTable::default(),
            next_id: 1,
            servers: HashMap::new(),
            server_index: HashMap::new(),
            clients: HashMap::new(),
            client_index: HashMap::new(),
            calls: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: SipStats::default(),
        }
    }

    /// Whether new calls are taken (see `OPTIONS` in the module docs).
    pub fn set_accepting_calls(&mut self, accepting: bool) {
        self.accepting_calls = accepting;
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    pub fn stats(&self) -> &SipStats {
        &self.stats
    }

    /// Server transactions kept now, and the bytes they hold (see [`budget`]).
    pub fn server_transactions(&self) -> (usize, usize) {
        (self.servers.len(), self.server_bytes)
    }

    /// Number of calls with a live dialog or pending INVITE.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    fn t1(&self) -> Duration {
        self.config.t1
    }

    fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Feed one UDP datagram or one framed stream message.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        data: &[u8],
    ) {
        let parsed = match message::parse(data) {
            Ok(Datagram::Keepalive) => return,
            Ok(Datagram::Message(p)) => p,
            Err(_) => {
                self.stats.garbage_dropped += 1;
                return;
            }
        };
        if parsed.message.status().is_some() {
            self.handle_response(now, parsed);
            return;
        }
        let Parsed { message, defect } = parsed;
        match validate(message, defect) {
            Ok(req) => self.handle_request(now, transport, source, req),
            Err(rejected) => {
                let (msg, rejection) = *rejected;
                let answerable = msg.method() != Some("ACK")
                    && msg.header("Via").is_some()
                    && msg.header("CSeq").is_some();
                if !answerable {
                    self.stats.garbage_dropped += 1;
                    return;
                }
                if rejection.status == 400 {
                    self.stats.parse_errors += 1;
                }
                tracing::debug!(status = rejection.status, why = rejection.why, %source, "rejecting request");
                let tag = self.rng.tag();
                let mut resp = response_to(
                    &msg,
                    source,
                    rejection.status,
                    Some(&tag),
                    &self.config.user_agent,
                );
                resp.headers.extend(rejection.extra);
                self.send_response(transport, source, &resp);
            }
        }
    }

    fn send_response(
        &mut self,
        transport: Transport,
        destination: SocketAddr,
        resp: &Message,
    ) -> Vec<u8> {
        if let Some(code) = resp.status() {
            *self.stats.responses_sent.entry(code).or_default() += 1;
        }
        let payload = resp.to_bytes();
        self.transmits.push_back(Transmit {
            transport,
            destination,
            payload: payload.clone(),
        });
        payload
    }

    fn resend(&mut self, transport: Transport, destination: SocketAddr, payload: Vec<u8>) {
        self.stats.retransmits_sent += 1;
        self.transmits.push_back(Transmit {
            transport,
            destination,
            payload,
        });
    }

    fn handle_request(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        req: Request,
    ) {
        let key = server_key(&req);
        if req.method == "ACK" {
            self.handle_ack(now, &key, req);
            return;
        }
        if let Some(id) = self.server_index.get(&key).copied() {
            // A retransmission: answer from the transaction, report nothing.
            self.stats.retransmits_received += 1;
            if let Some(tx) = self.servers.get(&id) {
                if let Some(last) = tx.last_response.clone() {
                    let (t, d) = (tx.transport, tx.source);
                    self.resend(t, d, last);
                }
            }
            return;
        }
        *self
            .stats
            .requests_received
            .entry(req.method.clone())
            .or_default() += 1;
        let in_dialog = req.to.tag().is_some();
        match req.method.as_str() {
            "INVITE" if in_dialog => self.handle_reinvite(now, transport, source, key, req),
            "INVITE" => self.handle_invite(now, transport, source, key, req),
            "CANCEL" => self.handle_cancel(now, transport, source, key, req),
            "OPTIONS" => {
                let extra = vec![
                    Header::new("Allow", ALLOW),
                    Header::new("Accept", ACCEPT),
                    Header::new("Supported", SUPPORTED),
                    Header::new(
                        "Contact",
                        contact_value(CONTACT_USER, self.config.local_for(transport), transport),
                    ),
                ];
                let dialog_tag = self.dialog_tag(&req);
                // A balancer's probe (outside any dialog) hears whether we take
                // calls; a keepalive inside a live call always gets 200.
                let status = if dialog_tag.is_none() && !self.accepting_calls {
                    503
                } else {
                    200
                };
                let tag = dialog_tag.unwrap_or_else(|| self.rng.tag());
                // Stateless: a keepalive needs no transaction, and a flood of them
                // must not build up state.
                self.respond_stateless(transport, source, &req, status, Some(tag), extra);
            }
            _ => self.handle_in_dialog(now, transport, source, key, req),
        }
    }

    /// Our tag if the request belongs to one of our dialogs.
    fn dialog_tag(&self, req: &Request) -> Option<String> {
        self.find_dialog(req)
            .map(|c| self.calls[&c].dialog.local_tag.clone())
    }

    fn find_dialog(&self, req: &Request) -> Option<CallKey> {
        let key = CallKey(req.call_id.clone());
        let call = self.calls.get(&key)?;
        let to_tag = req.to.tag()?;
        let from_tag = req.from.tag().unwrap_or_default();
        (to_tag == call.dialog.local_tag && from_tag == call.dialog.remote_tag).then_some(key)
    }

    fn end_call(&mut self, key: &CallKey, reason: EndReason) {
        if self.calls.remove(key).is_some() {
            tracing::debug!(call = %key, ?reason, "call ended");
            self.timers.stop_all(&Owner::Call(key.clone()));
            self.events.push_back(Event::Terminated {
                call: key.clone(),
                reason,
            });
        }
    }

    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Answer { call, sdp } => {
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                if c.state != CallState::Offered {
                    return;
                }
                c.local_sdp = Some(sdp.clone());
                let tx = c.invite_tx;
                self.send_2xx(now, tx, &call, 200, Some(&sdp), true);
            }
            Command::Reject {
                call,
                status,
                retry_after,
                warning,
            } => {
                let status = if (300..700).contains(&status) {
                    status
                } else {
                    500
                };
                let reason = EndReason::Rejected(status);
                self.reject(now, &call, status, retry_after, warning, reason);
            }
            Command::Hangup { call, reason } => {
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                if c.state == CallState::Offered {
                    self.reject(now, &call, 480, None, None, EndReason::LocalBye);
                } else {
                    self.send_bye(now, &call, reason);
                    self.end_call(&call, EndReason::LocalBye);
                }
            }
            Command::Refer {
                call,
                target,
                headers,
            } => self.send_refer(now, &call, target, headers),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((owner, timer, deadline)) = self.timers.pop_expired(now) {
            match (owner, timer) {
                (Owner::Server(id), Timer::G) => {
                    let Some(tx) = self.servers.get_mut(&id) else {
                        continue;
                    };
                    if tx.state != ServerState::Completed {
                        continue;
                    }
                    tx.interval = backoff(tx.interval, self.config.t2);
                    let next = deadline + tx.interval;
                    let (t, d, p) = (
                        tx.transport,
                        tx.source,
                        tx.last_response.clone().unwrap_or_default(),
                    );
                    self.timers.set(Owner::Server(id), Timer::G, next);
                    self.resend(t, d, p);
                }
                (Owner::Server(id), _) => self.remove_server(id),
                (Owner::Client(id), Timer::E) => {
                    let Some(tx) = self.clients.get_mut(&id) else {
                        continue;
                    };
                    let resend = (tx.transport, tx.destination, tx.payload.clone());
                    tx.interval = backoff(tx.interval, self.config.t2);
                    let next = deadline + tx.interval;
                    self.timers.set(Owner::Client(id), Timer::E, next);
                    self.resend(resend.0, resend.1, resend.2);
                }
                (Owner::Client(id), Timer::F) => {
                    self.timers.stop(&Owner::Client(id), Timer::E);
                    if let Some(tx) = self.remove_client(id) {
                        match tx.purpose {
                            ClientPurpose::Refer => self.events.push_back(Event::ReferStatus {
                                call: tx.call,
                                status: ReferStatus::Rejected(408),
                            }),
                            ClientPurpose::Refresh => {
                                self.on_refresh_result(now, &tx.call, None, None)
                            }
                            _ => {}
                        }
                    }
                }
                (Owner::Client(id), _) => {
                    self.remove_client(id);
                }
                (Owner::Call(key), Timer::Retransmit2xx) => {
                    let t2 = self.config.t2;
                    let transport = match self.calls.get(&key) {
                        Some(c) => c.dialog.transport,
                        None => continue,
                    };
                    let Some(p) = self
                        .calls
                        .get_mut(&key)
                        .and_then(|c| c.pending_2xx.as_mut())
                    else {
                        continue;
                    };
                    p.interval = backoff(p.interval, t2);
                    let next = deadline + p.interval;
                    let (d, payload) = (p.destination, p.payload.clone());
                    self.timers
                        .set(Owner::Call(key), Timer::Retransmit2xx, next);
                    self.resend(transport, d, payload);
                }
                (Owner::Call(key), Timer::H) => {
                    // No ACK for our 2xx: end the dialog with BYE (RFC 3261 §13.3.1.4).
                    let pending = self.calls.get_mut(&key).and_then(|c| c.pending_2xx.take());
                    if pending.is_some() {
                        tracing::info!(call = %key, "no ACK for 2xx within 64*T1, sending BYE");
                        self.send_bye(now, &key, Some(ByeReason::ACK_TIMEOUT));
                        self.end_call(&key, EndReason::AckTimeout);
                    }
                }
                (Owner::Call(key), Timer::Session) => self.on_session_timer(now, &key),
                (Owner::Call(_), _) => {}
            }
        }
    }

    fn remove_server(&mut self, id: u64) {
        if let Some(tx) = self.servers.remove(&id) {
            self.server_bytes -= tx.size;
            self.timers.stop_all(&Owner::Server(id));
            if self.server_index.get(&tx.key) == Some(&id) {
                self.server_index.remove(&tx.key);
            }
        }
    }
}
