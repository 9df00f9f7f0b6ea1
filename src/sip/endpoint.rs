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
//! `application/dtmf` get 415; an INFO without a body gets 200. OPTIONS always gets
//! 200, in or out of a dialog. Requests rejected by validation (400, 405, 415, …),
//! OPTIONS and 481s are answered statelessly (RFC 3261 §8.2.7), so a flood of them
//! builds no state. A non-refer NOTIFY gets 489; a NOTIFY, INFO, BYE or UPDATE outside
//! any dialog gets 481; an in-dialog request with a CSeq below the last one gets 500;
//! a re-INVITE while our 2xx is unacknowledged gets 491.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::dialog::{contact_value, Dialog};
use super::message::{self, uri_user, Datagram, Header, Message, NameAddr, Parsed};
use super::timer::{Timer, TimerTable};
use super::transaction::{
    backoff, cancel_target_key, response_to, server_key, set_body, ClientPurpose,
    ClientTransaction, ServerState, ServerTransaction,
};
use super::validate::{validate, Request};
use super::{
    random_token, CallKey, Command, EndReason, EndpointConfig, Event, IncomingCall, ReferStatus,
    SipStats, Transmit, Transport, ACCEPT, ALLOW, SUPPORTED,
};

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
}

impl Endpoint {
    pub fn new(config: EndpointConfig) -> Self {
        Endpoint {
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

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    pub fn stats(&self) -> &SipStats {
        &self.stats
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
                let tag = random_token(12);
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
                        contact_value(CONTACT_USER, self.config.local_addr, transport),
                    ),
                ];
                let tag = self.dialog_tag(&req).unwrap_or_else(|| random_token(12));
                // Stateless: a keepalive needs no transaction, and a flood of them
                // must not build up state.
                self.respond_stateless(transport, source, &req, 200, Some(tag), extra);
            }
            _ => self.handle_in_dialog(now, transport, source, key, req),
        }
    }

    /// Our tag if the request belongs to one of our dialogs.
    fn dialog_tag(&self, req: &Request) -> Option<String> {
        self.find_dialog(req)
            .map(|c| self.calls[&c].dialog.local_tag.clone())
    }

    /// Answer without a transaction (RFC 3261 §8.2.7): a retransmitted request simply
    /// gets the same answer again.
    fn respond_stateless(
        &mut self,
        transport: Transport,
        source: SocketAddr,
        req: &Request,
        status: u16,
        to_tag: Option<String>,
        extra: Vec<Header>,
    ) {
        let mut resp = response_to(
            &req.msg,
            source,
            status,
            to_tag.as_deref(),
            &self.config.user_agent,
        );
        resp.headers.extend(extra);
        self.send_response(transport, source, &resp);
    }

    fn find_dialog(&self, req: &Request) -> Option<CallKey> {
        let key = CallKey(req.call_id.clone());
        let call = self.calls.get(&key)?;
        let to_tag = req.to.tag()?;
        let from_tag = req.from.tag().unwrap_or_default();
        (to_tag == call.dialog.local_tag && from_tag == call.dialog.remote_tag).then_some(key)
    }

    #[allow(clippy::too_many_arguments)]
    fn respond_non_invite(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        key: String,
        req: Request,
        status: u16,
        to_tag: Option<String>,
        extra: Vec<Header>,
        body: Option<(&str, String)>,
    ) {
        let mut resp = response_to(
            &req.msg,
            source,
            status,
            to_tag.as_deref(),
            &self.config.user_agent,
        );
        resp.headers.extend(extra);
        if let Some((ct, b)) = body {
            set_body(&mut resp, ct, b.as_bytes());
        }
        let payload = self.send_response(transport, source, &resp);
        // Completed: keep the response for retransmitted requests (Timer J).
        let id = self.id();
        let call = Some(CallKey(req.call_id.clone()));
        self.servers.insert(
            id,
            ServerTransaction {
                key: key.clone(),
                invite: false,
                request: req,
                source,
                transport,
                state: ServerState::Completed,
                last_response: Some(payload),
                interval: self.t1(),
                call,
            },
        );
        self.server_index.insert(key, id);
        let j = if transport.is_reliable() {
            Duration::ZERO
        } else {
            self.t1() * 64
        };
        self.timers.set(Owner::Server(id), Timer::J, now + j);
    }

    fn new_invite_tx(
        &mut self,
        transport: Transport,
        source: SocketAddr,
        key: String,
        req: Request,
    ) -> u64 {
        let id = self.id();
        let call = Some(CallKey(req.call_id.clone()));
        self.servers.insert(
            id,
            ServerTransaction {
                key: key.clone(),
                invite: true,
                request: req,
                source,
                transport,
                state: ServerState::Proceeding,
                last_response: None,
                interval: self.config.t1,
                call,
            },
        );
        self.server_index.insert(key, id);
        id
    }

    /// Send a final non-2xx on an INVITE transaction: Completed, Timers G and H.
    fn invite_final_error(
        &mut self,
        now: Instant,
        id: u64,
        status: u16,
        to_tag: Option<&str>,
        extra: Vec<Header>,
    ) {
        let Some(tx) = self.servers.get(&id) else {
            return;
        };
        let mut resp = response_to(
            &tx.request.msg,
            tx.source,
            status,
            to_tag,
            &self.config.user_agent,
        );
        resp.headers.extend(extra);
        let (transport, source) = (tx.transport, tx.source);
        let payload = self.send_response(transport, source, &resp);
        if let Some(tx) = self.servers.get_mut(&id) {
            tx.state = ServerState::Completed;
            tx.last_response = Some(payload);
            tx.interval = self.config.t1;
        }
        if !transport.is_reliable() {
            self.timers
                .set(Owner::Server(id), Timer::G, now + self.config.t1);
        }
        self.timers
            .set(Owner::Server(id), Timer::H, now + self.config.t1 * 64);
    }

    fn handle_invite(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        key: String,
        req: Request,
    ) {
        let call_key = CallKey(req.call_id.clone());
        let id = self.new_invite_tx(transport, source, key, req);
        let tx = &self.servers[&id];
        let trying = response_to(&tx.request.msg, source, 100, None, &self.config.user_agent);
        let payload = self.send_response(transport, source, &trying);
        if let Some(tx) = self.servers.get_mut(&id) {
            tx.last_response = Some(payload);
        }
        if self.calls.contains_key(&call_key) {
            // Same Call-ID, new transaction, no To tag: a merged or looped request.
            let tag = random_token(12);
            self.invite_final_error(now, id, 482, Some(&tag), Vec::new());
            return;
        }
        let req = &self.servers[&id].request;
        let local_tag = random_token(12);
        let offer = req.body_text();
        let dialog = Dialog {
            call_id: req.call_id.clone(),
            local_tag: local_tag.clone(),
            remote_tag: req.from.tag().unwrap_or_default().to_string(),
            local_party: format!(
                "{};tag={local_tag}",
                req.msg.header("To").unwrap_or_default()
            ),
            remote_party: req.msg.header("From").unwrap_or_default().to_string(),
            remote_target: req.contact.as_ref().map(|c| c.uri.clone()),
            route_set: Dialog::route_set_from(&req.msg, false),
            local_cseq: 0,
            remote_cseq: req.cseq,
            source,
            transport,
        };
        let incoming = IncomingCall {
            call: call_key.clone(),
            request_uri_user: uri_user(&req.uri),
            from_user: uri_user(&req.from.uri),
            source,
            transport,
            offer: offer.clone(),
        };
        self.calls.insert(
            call_key,
            Call {
                dialog,
                state: CallState::Offered,
                invite_tx: id,
                late_offer: offer.is_none(),
                local_sdp: None,
                pending_2xx: None,
            },
        );
        tracing::debug!(call = %incoming.call, %source, ?transport, late_offer = incoming.offer.is_none(), "incoming call");
        self.events.push_back(Event::IncomingCall(incoming));
    }

    /// 481 Call/Transaction Does Not Exist (RFC 3261 §12.2.2, §9.2), sent
    /// statelessly so that stray requests build no state.
    fn respond_no_such_transaction(
        &mut self,
        transport: Transport,
        source: SocketAddr,
        req: &Request,
    ) {
        self.respond_stateless(
            transport,
            source,
            req,
            481,
            Some(random_token(12)),
            Vec::new(),
        );
    }

    fn handle_reinvite(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        key: String,
        req: Request,
    ) {
        let Some(call_key) = self.find_dialog(&req) else {
            self.respond_no_such_transaction(transport, source, &req);
            return;
        };
        let cseq = req.cseq;
        let id = self.new_invite_tx(transport, source, key, req);
        let call = &self.calls[&call_key];
        let tag = call.dialog.local_tag.clone();
        if cseq < call.dialog.remote_cseq {
            self.invite_final_error(now, id, 500, Some(&tag), Vec::new());
            return;
        }
        if call.pending_2xx.is_some() || call.state == CallState::Offered {
            self.invite_final_error(now, id, 491, Some(&tag), Vec::new());
            return;
        }
        let sdp = call.local_sdp.clone();
        if let Some(call) = self.calls.get_mut(&call_key) {
            call.dialog.remote_cseq = cseq;
            if let Some(c) = &self.servers[&id].request.contact {
                call.dialog.remote_target = Some(c.uri.clone());
            }
        }
        self.send_2xx(now, id, &call_key, 200, sdp.as_deref(), false);
    }

    /// Send a 2xx to an INVITE (initial or re-INVITE) and start retransmitting it.
    fn send_2xx(
        &mut self,
        now: Instant,
        tx_id: u64,
        call_key: &CallKey,
        status: u16,
        sdp: Option<&str>,
        initial: bool,
    ) {
        let Some(tx) = self.servers.get(&tx_id) else {
            return;
        };
        let Some(call) = self.calls.get(call_key) else {
            return;
        };
        let (transport, source) = (tx.transport, tx.source);
        let mut resp = response_to(
            &tx.request.msg,
            source,
            status,
            Some(&call.dialog.local_tag),
            &self.config.user_agent,
        );
        resp.push(
            "Contact",
            contact_value(CONTACT_USER, self.config.local_addr, transport),
        );
        resp.push("Allow", ALLOW);
        resp.push("Supported", SUPPORTED);
        if let Some(sdp) = sdp {
            set_body(&mut resp, "application/sdp", sdp.as_bytes());
        }
        let cseq = tx.request.cseq;
        let payload = self.send_response(transport, source, &resp);
        if let Some(tx) = self.servers.get_mut(&tx_id) {
            tx.state = ServerState::Accepted;
            tx.last_response = Some(payload.clone());
        }
        let t1 = self.config.t1;
        self.timers
            .set(Owner::Server(tx_id), Timer::L, now + t1 * 64);
        if let Some(call) = self.calls.get_mut(call_key) {
            call.pending_2xx = Some(Pending2xx {
                cseq,
                payload,
                destination: source,
                interval: t1,
                initial,
            });
            if initial {
                call.state = CallState::Answered;
            }
        }
        let owner = Owner::Call(call_key.clone());
        if !transport.is_reliable() {
            self.timers
                .set(owner.clone(), Timer::Retransmit2xx, now + t1);
        }
        self.timers.set(owner, Timer::H, now + t1 * 64);
    }

    fn handle_ack(&mut self, now: Instant, key: &str, req: Request) {
        // ACK for a non-2xx final response: same branch as the INVITE.
        if let Some(id) = self.server_index.get(key).copied() {
            let tx = &self.servers[&id];
            if tx.invite && tx.state == ServerState::Completed {
                *self
                    .stats
                    .requests_received
                    .entry("ACK".into())
                    .or_default() += 1;
                let reliable = tx.transport.is_reliable();
                if let Some(tx) = self.servers.get_mut(&id) {
                    tx.state = ServerState::Confirmed;
                }
                let owner = Owner::Server(id);
                self.timers.stop(&owner, Timer::G);
                self.timers.stop(&owner, Timer::H);
                let i = if reliable {
                    Duration::ZERO
                } else {
                    self.config.t4
                };
                self.timers.set(owner, Timer::I, now + i);
                return;
            }
            if tx.invite && tx.state == ServerState::Confirmed {
                self.stats.retransmits_received += 1;
                return;
            }
        }
        // ACK for a 2xx: a request of the dialog.
        let Some(call_key) = self.find_dialog(&req) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&call_key) else {
            return;
        };
        match &call.pending_2xx {
            Some(p) if p.cseq == req.cseq => {
                let initial = p.initial;
                call.pending_2xx = None;
                *self
                    .stats
                    .requests_received
                    .entry("ACK".into())
                    .or_default() += 1;
                let owner = Owner::Call(call_key.clone());
                self.timers.stop(&owner, Timer::Retransmit2xx);
                self.timers.stop(&owner, Timer::H);
                if initial {
                    call.state = CallState::Confirmed;
                    let ack_sdp = if call.late_offer {
                        req.body_text()
                    } else {
                        None
                    };
                    let tx = call.invite_tx;
                    if let Some(tx) = self.servers.get_mut(&tx) {
                        tx.state = ServerState::Confirmed;
                    }
                    self.events.push_back(Event::Established {
                        call: call_key,
                        ack_sdp,
                    });
                }
            }
            _ => self.stats.retransmits_received += 1,
        }
    }

    fn handle_cancel(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        key: String,
        req: Request,
    ) {
        let target = cancel_target_key(&req);
        let Some(invite_id) = self.server_index.get(&target).copied() else {
            self.respond_no_such_transaction(transport, source, &req);
            return;
        };
        let call_key = self.servers[&invite_id].call.clone();
        let local_tag = call_key
            .as_ref()
            .and_then(|k| self.calls.get(k))
            .map(|c| c.dialog.local_tag.clone())
            .unwrap_or_else(|| random_token(12));
        self.respond_non_invite(
            now,
            transport,
            source,
            key,
            req,
            200,
            Some(local_tag.clone()),
            Vec::new(),
            None,
        );
        if self.servers[&invite_id].state != ServerState::Proceeding {
            return; // Too late: a final response was already sent.
        }
        self.invite_final_error(now, invite_id, 487, Some(&local_tag), Vec::new());
        if let Some(k) = call_key {
            if self
                .calls
                .get(&k)
                .is_some_and(|c| c.state == CallState::Offered)
            {
                self.end_call(&k, EndReason::Cancelled);
            }
        }
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

    fn handle_in_dialog(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        key: String,
        req: Request,
    ) {
        let Some(call_key) = self.find_dialog(&req) else {
            self.respond_no_such_transaction(transport, source, &req);
            return;
        };
        let Some(call) = self.calls.get_mut(&call_key) else {
            return;
        };
        let tag = call.dialog.local_tag.clone();
        if req.cseq < call.dialog.remote_cseq {
            self.respond_non_invite(
                now,
                transport,
                source,
                key,
                req,
                500,
                Some(tag),
                Vec::new(),
                None,
            );
            return;
        }
        call.dialog.remote_cseq = req.cseq;
        match req.method.as_str() {
            "BYE" => {
                self.respond_non_invite(
                    now,
                    transport,
                    source,
                    key,
                    req,
                    200,
                    Some(tag.clone()),
                    Vec::new(),
                    None,
                );
                if let Some(call) = self.calls.get(&call_key) {
                    if call.state == CallState::Offered {
                        let tx = call.invite_tx;
                        self.invite_final_error(now, tx, 487, Some(&tag), Vec::new());
                    }
                }
                self.end_call(&call_key, EndReason::RemoteBye);
            }
            "INFO" => self.handle_info(now, transport, source, key, req, call_key, tag),
            "UPDATE" => {
                let sdp = self.calls[&call_key].local_sdp.clone();
                let body = if req.msg.body.is_empty() {
                    None
                } else {
                    sdp.map(|s| ("application/sdp", s))
                };
                let extra = vec![Header::new(
                    "Contact",
                    contact_value(CONTACT_USER, self.config.local_addr, transport),
                )];
                self.respond_non_invite(
                    now,
                    transport,
                    source,
                    key,
                    req,
                    200,
                    Some(tag),
                    extra,
                    body,
                );
            }
            "NOTIFY" => self.handle_notify(now, transport, source, key, req, call_key, tag),
            // REFER (we do not get transferred) and anything else served in a dialog.
            _ => self.respond_non_invite(
                now,
                transport,
                source,
                key,
                req,
                603,
                Some(tag),
                Vec::new(),
                None,
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_info(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        key: String,
        req: Request,
        call: CallKey,
        tag: String,
    ) {
        if req.msg.body.is_empty() {
            self.respond_non_invite(
                now,
                transport,
                source,
                key,
                req,
                200,
                Some(tag),
                Vec::new(),
                None,
            );
            return;
        }
        let ct = req.content_type().unwrap_or_default();
        let body = String::from_utf8_lossy(&req.msg.body).into_owned();
        let parsed = match ct.as_str() {
            "application/dtmf-relay" => Some(parse_dtmf_relay(&body)),
            "application/dtmf" => Some(parse_dtmf(&body).map(|d| (d, None))),
            _ => None,
        };
        match parsed {
            None => {
                let extra = vec![Header::new(
                    "Accept",
                    "application/dtmf-relay, application/dtmf",
                )];
                self.respond_non_invite(
                    now,
                    transport,
                    source,
                    key,
                    req,
                    415,
                    Some(tag),
                    extra,
                    None,
                );
            }
            Some(None) => self.respond_non_invite(
                now,
                transport,
                source,
                key,
                req,
                400,
                Some(tag),
                Vec::new(),
                None,
            ),
            Some(Some((digit, duration_ms))) => {
                self.respond_non_invite(
                    now,
                    transport,
                    source,
                    key,
                    req,
                    200,
                    Some(tag),
                    Vec::new(),
                    None,
                );
                self.events.push_back(Event::Dtmf {
                    call,
                    digit,
                    duration_ms,
                });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_notify(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        key: String,
        req: Request,
        call: CallKey,
        tag: String,
    ) {
        let event = req
            .msg
            .header("Event")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let event_type = event
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        if event_type != "refer" {
            self.respond_non_invite(
                now,
                transport,
                source,
                key,
                req,
                489,
                Some(tag),
                Vec::new(),
                None,
            );
            return;
        }
        let ct = req.content_type().unwrap_or_default();
        let code = if ct == "message/sipfrag" {
            sipfrag_status(&String::from_utf8_lossy(&req.msg.body))
        } else {
            None
        };
        match code {
            Some(code) => {
                self.respond_non_invite(
                    now,
                    transport,
                    source,
                    key,
                    req,
                    200,
                    Some(tag),
                    Vec::new(),
                    None,
                );
                self.events.push_back(Event::ReferStatus {
                    call,
                    status: ReferStatus::Notify(code),
                });
            }
            None => self.respond_non_invite(
                now,
                transport,
                source,
                key,
                req,
                400,
                Some(tag),
                Vec::new(),
                None,
            ),
        }
    }

    fn handle_response(&mut self, now: Instant, parsed: Parsed) {
        let msg = parsed.message;
        let branch = msg
            .header("Via")
            .and_then(message::Via::parse)
            .and_then(|v| v.param("branch").map(str::to_string));
        let id = branch.and_then(|b| self.client_index.get(&b).copied());
        let (Some(id), None, Some(code)) = (id, parsed.defect, msg.status()) else {
            self.stats.garbage_dropped += 1;
            return;
        };
        let Some(tx) = self.clients.get_mut(&id) else {
            self.stats.garbage_dropped += 1;
            return;
        };
        if tx.completed {
            self.stats.retransmits_received += 1;
            return;
        }
        if code < 200 {
            tx.interval = self.config.t2;
            return;
        }
        tx.completed = true;
        let (purpose, call, reliable) = (tx.purpose, tx.call.clone(), tx.transport.is_reliable());
        let owner = Owner::Client(id);
        self.timers.stop(&owner, Timer::E);
        self.timers.stop(&owner, Timer::F);
        let k = if reliable {
            Duration::ZERO
        } else {
            self.config.t4
        };
        self.timers.set(owner, Timer::K, now + k);
        if purpose == ClientPurpose::Refer {
            let status = if (200..300).contains(&code) {
                ReferStatus::Accepted
            } else {
                ReferStatus::Rejected(code)
            };
            self.events.push_back(Event::ReferStatus { call, status });
        }
    }

    fn send_request(
        &mut self,
        now: Instant,
        call_key: &CallKey,
        method: &str,
        purpose: ClientPurpose,
        extra: Vec<Header>,
    ) {
        let Some(call) = self.calls.get_mut(call_key) else {
            return;
        };
        let (msg, branch) = call.dialog.request(
            method,
            self.config.local_addr,
            &self.config.user_agent,
            None,
            extra,
        );
        let destination = call.dialog.destination(self.config.symmetric_signalling);
        let transport = call.dialog.transport;
        let payload = msg.to_bytes();
        self.transmits.push_back(Transmit {
            transport,
            destination,
            payload: payload.clone(),
        });
        let id = self.id();
        self.clients.insert(
            id,
            ClientTransaction {
                branch: branch.clone(),
                purpose,
                call: call_key.clone(),
                payload,
                destination,
                transport,
                interval: self.config.t1,
                completed: false,
            },
        );
        self.client_index.insert(branch, id);
        let owner = Owner::Client(id);
        if !transport.is_reliable() {
            self.timers
                .set(owner.clone(), Timer::E, now + self.config.t1);
        }
        self.timers.set(owner, Timer::F, now + self.config.t1 * 64);
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
            } => {
                let status = if (300..700).contains(&status) {
                    status
                } else {
                    500
                };
                self.reject(now, &call, status, retry_after, EndReason::Rejected(status));
            }
            Command::Hangup { call } => {
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                if c.state == CallState::Offered {
                    self.reject(now, &call, 480, None, EndReason::LocalBye);
                } else {
                    self.send_request(now, &call, "BYE", ClientPurpose::Bye, Vec::new());
                    self.end_call(&call, EndReason::LocalBye);
                }
            }
            Command::Refer {
                call,
                target,
                headers,
            } => {
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                if c.state == CallState::Offered {
                    return;
                }
                let transport = c.dialog.transport;
                let referred_by = NameAddr::parse(&c.dialog.local_party)
                    .map(|n| format!("<{}>", n.uri))
                    .unwrap_or_else(|| {
                        contact_value(CONTACT_USER, self.config.local_addr, transport)
                    });
                let refer_to = if target.trim_start().starts_with('<') {
                    target
                } else {
                    format!("<{target}>")
                };
                let mut extra = vec![
                    Header::new(
                        "Contact",
                        contact_value(CONTACT_USER, self.config.local_addr, transport),
                    ),
                    Header::new("Refer-To", refer_to),
                    Header::new("Referred-By", referred_by),
                ];
                extra.extend(headers.into_iter().map(|(n, v)| Header::new(n, v)));
                self.send_request(now, &call, "REFER", ClientPurpose::Refer, extra);
            }
        }
    }

    fn reject(
        &mut self,
        now: Instant,
        call: &CallKey,
        status: u16,
        retry_after: Option<u32>,
        reason: EndReason,
    ) {
        let Some(c) = self.calls.get(call) else {
            return;
        };
        if c.state != CallState::Offered {
            return;
        }
        let (tx, tag) = (c.invite_tx, c.dialog.local_tag.clone());
        let extra = retry_after
            .map(|s| vec![Header::new("Retry-After", s.to_string())])
            .unwrap_or_default();
        self.invite_final_error(now, tx, status, Some(&tag), extra);
        self.end_call(call, reason);
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
                        if tx.purpose == ClientPurpose::Refer {
                            self.events.push_back(Event::ReferStatus {
                                call: tx.call,
                                status: ReferStatus::Rejected(408),
                            });
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
                        self.send_request(now, &key, "BYE", ClientPurpose::Bye, Vec::new());
                        self.end_call(&key, EndReason::AckTimeout);
                    }
                }
                (Owner::Call(_), _) => {}
            }
        }
    }

    fn remove_server(&mut self, id: u64) {
        if let Some(tx) = self.servers.remove(&id) {
            self.timers.stop_all(&Owner::Server(id));
            if self.server_index.get(&tx.key) == Some(&id) {
                self.server_index.remove(&tx.key);
            }
        }
    }

    fn remove_client(&mut self, id: u64) -> Option<ClientTransaction> {
        let tx = self.clients.remove(&id)?;
        self.timers.stop_all(&Owner::Client(id));
        self.client_index.remove(&tx.branch);
        Some(tx)
    }
}

/// `application/dtmf-relay` (`Signal=5\r\nDuration=160`). `Signal` may be a digit,
/// `*`, `#`, `A`–`D`, or the event number 10/11 for `*`/`#`.
pub fn parse_dtmf_relay(body: &str) -> Option<(char, Option<u32>)> {
    let mut digit = None;
    let mut duration = None;
    for line in body.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "signal" => digit = dtmf_char(v),
            "duration" => duration = v.parse::<u32>().ok(),
            _ => {}
        }
    }
    digit.map(|d| (d, duration))
}

/// `application/dtmf`: the body is the digit (or event number).
pub fn parse_dtmf(body: &str) -> Option<char> {
    dtmf_char(body.trim())
}

fn dtmf_char(v: &str) -> Option<char> {
    match v {
        "10" => return Some('*'),
        "11" => return Some('#'),
        "12" => return Some('A'),
        "13" => return Some('B'),
        "14" => return Some('C'),
        "15" => return Some('D'),
        _ => {}
    }
    let mut chars = v.chars();
    let c = chars.next()?.to_ascii_uppercase();
    (chars.next().is_none() && matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')).then_some(c)
}

/// The status code of a `message/sipfrag` body's status line.
pub fn sipfrag_status(body: &str) -> Option<u16> {
    let line = body.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let code = rest.split_whitespace().next()?;
    let code: u16 = code.parse().ok()?;
    (100..700).contains(&code).then_some(code)
}
