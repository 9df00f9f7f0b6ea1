//! The INVITE server transaction and the UAS core around it (RFC 3261 §13.3, §17.2.1,
//! RFC 6026): `100 Trying`, the 2xx retransmitted until ACK with Timer H ending an
//! unacknowledged dialog by BYE, non-2xx finals with Timers G/H/I, ACK matching for both,
//! CANCEL → `487`, and re-INVITE answered with the same session (`491` while our 2xx is
//! unacknowledged, `500` for an old CSeq).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::super::dialog::Dialog;
use super::super::message::{asserted_user, uri_user, Header};
use super::super::sdp;
use super::super::timer::Timer;
use super::super::transaction::{
    cancel_target_key, response_to, set_body, ServerState, ServerTransaction,
};
use super::super::validate::Request;
use super::super::{
    ByeReason, CallKey, EndReason, Event, IncomingCall, Transport, Warning, ALLOW, SUPPORTED,
};
use super::budget::footprint;
use super::session_timer::{self, Ask};
use super::{Call, CallState, Endpoint, Owner, Pending2xx, CONTACT_USER};

impl Endpoint {
    pub(super) fn new_invite_tx(
        &mut self,
        transport: Transport,
        source: SocketAddr,
        key: String,
        req: Request,
    ) -> Option<u64> {
        let call = Some(CallKey(req.call_id.clone()));
        let mut tx = ServerTransaction {
            key: key.clone(),
            invite: true,
            request: req,
            source,
            transport,
            state: ServerState::Proceeding,
            last_response: None,
            interval: self.config.t1,
            call,
            size: 0,
        };
        tx.size = footprint(&tx);
        if !self.make_room(tx.size) {
            // Every slot is a live transaction: refuse without building state.
            self.stats.shed_no_room += 1;
            let tag = self.rng.tag();
            let retry = Header::new("Retry-After", self.config.retry_after_secs.to_string());
            self.respond_stateless(transport, source, &tx.request, 503, Some(tag), vec![retry]);
            return None;
        }
        let id = self.id();
        self.server_bytes += tx.size;
        self.servers.insert(id, tx);
        self.server_index.insert(key, id);
        Some(id)
    }

    /// Send a final non-2xx on an INVITE transaction: Completed, Timers G and H.
    pub(super) fn invite_final_error(
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
        self.finish_server(id);
        if !transport.is_reliable() {
            self.timers
                .set(Owner::Server(id), Timer::G, now + self.config.t1);
        }
        self.timers
            .set(Owner::Server(id), Timer::H, now + self.config.t1 * 64);
    }

    pub(super) fn handle_invite(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        key: String,
        req: Request,
    ) {
        let call_key = CallKey(req.call_id.clone());
        let Some(id) = self.new_invite_tx(transport, source, key, req) else {
            return;
        };
        let tx = &self.servers[&id];
        let trying = response_to(&tx.request.msg, source, 100, None, &self.config.user_agent);
        let payload = self.send_response(transport, source, &trying);
        if let Some(tx) = self.servers.get_mut(&id) {
            tx.last_response = Some(payload);
        }
        self.recount(id);
        if self.calls.contains_key(&call_key) {
            // Same Call-ID, new transaction, no To tag: a merged or looped request.
            let tag = self.rng.tag();
            self.invite_final_error(now, id, 482, Some(&tag), Vec::new());
            return;
        }
        let local_tag = self.rng.tag();
        // A session interval under our Min-SE: 422 before any call is
        // offered (RFC 4028 §8.1); the caller asks again with a longer one.
        let asked = session_timer::ask(&self.servers[&id].request.msg);
        if asked == Ask::TooSmall {
            self.invite_final_error(now, id, 422, Some(&local_tag), session_timer::too_small());
            return;
        }
        let req = &self.servers[&id].request;
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
            secure: Dialog::is_secure(&req.msg, transport),
        };
        let incoming = IncomingCall {
            call: call_key.clone(),
            request_uri_user: uri_user(&req.uri),
            from_user: uri_user(&req.from.uri),
            asserted_user: asserted_user(&req.msg),
            forwarded_for: crate::sip::message::forwarded_for(&req.msg),
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
                asked_timer: asked.granted(),
                session_timer: None,
            },
        );
        tracing::debug!(call = %incoming.call, %source, ?transport, late_offer = incoming.offer.is_none(), "incoming call");
        self.events.push_back(Event::IncomingCall(incoming));
    }

    pub(super) fn handle_reinvite(
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
        let offer = req.body_text();
        let Some(id) = self.new_invite_tx(transport, source, key, req) else {
            return;
        };
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
        let asked = session_timer::ask(&self.servers[&id].request.msg);
        if asked == Ask::TooSmall {
            self.invite_final_error(now, id, 422, Some(&tag), session_timer::too_small());
            return;
        }
        if let Some(call) = self.calls.get_mut(&call_key) {
            call.asked_timer = asked.granted();
            call.dialog.remote_cseq = cseq;
            if let Some(c) = &self.servers[&id].request.contact {
                call.dialog.remote_target = Some(c.uri.clone());
            }
        }
        if offer.is_none() {
            // No offer: ours goes in the 200, the answer comes in the ACK.
            let ours = self.calls.get_mut(&call_key).and_then(|call| {
                let ours = call.local_sdp.as_deref().map(sdp::reoffer)?;
                call.local_sdp = Some(ours.clone());
                Some(ours)
            });
            self.send_2xx(now, id, &call_key, 200, ours.as_deref(), false);
            if let Some(p) = self
                .calls
                .get_mut(&call_key)
                .and_then(|c| c.pending_2xx.as_mut())
            {
                p.offers = ours.is_some();
            }
            return;
        }
        match self.answer_reoffer(&call_key, offer, transport) {
            Ok(sdp) => self.send_2xx(now, id, &call_key, 200, sdp.as_deref(), false),
            // The session goes on as it was (RFC 3261 §14.2).
            Err(warning) => self.invite_final_error(now, id, 488, Some(&tag), vec![warning]),
        }
    }

    /// A new offer in an established call (a re-INVITE or UPDATE with a body,
    /// RFC 3264 §8): our description answers it ([`sdp::reanswer`]), and the
    /// caller's new media address and direction are reported
    /// ([`Event::MediaUpdate`]): a gateway that moves its media, or puts the
    /// call on hold. `Err`: the `Warning` header of the `488` that refuses the
    /// offer; nothing changes. No body (`None`): our description as it is.
    pub(super) fn answer_reoffer(
        &mut self,
        call_key: &CallKey,
        offer: Option<String>,
        transport: Transport,
    ) -> Result<Option<String>, Header> {
        let agent = self.config.local_for(transport);
        let Some(call) = self.calls.get_mut(call_key) else {
            return Ok(None);
        };
        let (Some(offer), Some(local)) = (offer, call.local_sdp.as_deref()) else {
            return Ok(call.local_sdp.clone());
        };
        match sdp::reanswer(local, &offer) {
            Ok((answer, o, srtp)) => {
                call.local_sdp = Some(answer.clone());
                self.events.push_back(media_update(call_key, &o, srtp));
                Ok(Some(answer))
            }
            Err(e) => {
                let w = e.warning();
                tracing::debug!(call = %call_key, code = w.code, "new offer refused");
                Err(Header::new("Warning", w.header_value(agent)))
            }
        }
    }

    /// Send a 2xx to an INVITE (initial or re-INVITE) and start retransmitting it.
    pub(super) fn send_2xx(
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
            call.dialog
                .contact(CONTACT_USER, self.config.local_for(transport)),
        );
        resp.push("Allow", ALLOW);
        resp.push("Supported", SUPPORTED);
        let granted = call.asked_timer;
        if let Some(t) = granted {
            resp.headers.extend(t.headers());
        }
        if let Some(sdp) = sdp {
            set_body(&mut resp, "application/sdp", sdp.as_bytes());
        }
        let cseq = tx.request.cseq;
        let payload = self.send_response(transport, source, &resp);
        if let Some(tx) = self.servers.get_mut(&tx_id) {
            tx.state = ServerState::Accepted;
            tx.last_response = Some(payload.clone());
        }
        self.recount(tx_id);
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
                offers: false,
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
        self.restart_session_timer(now, call_key, granted);
    }

    pub(super) fn handle_ack(&mut self, now: Instant, key: &str, req: Request) {
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
                let offered = p.offers;
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
                    // Late offer: the ACK must carry an answer the call can use.
                    let refused = match (call.late_offer, ack_sdp.as_deref()) {
                        (false, _) => None,
                        (true, None) => Some(Warning::UNUSABLE_SDP),
                        (true, Some(answer)) => {
                            let local = call.local_sdp.as_deref().unwrap_or_default();
                            sdp::accept_late_answer(local, answer)
                                .err()
                                .map(|e| e.warning())
                        }
                    };
                    let tx = call.invite_tx;
                    if let Some(t) = self.servers.get_mut(&tx) {
                        t.state = ServerState::Confirmed;
                    }
                    self.finish_server(tx);
                    if let Some(warning) = refused {
                        tracing::info!(
                            call = %call_key, code = warning.code, reason = warning.text,
                            "late offer: the ACK has no answer the call can use: BYE"
                        );
                        self.send_bye(now, &call_key, Some(ByeReason::refused(warning)));
                        self.end_call(&call_key, EndReason::MediaRefused);
                        return;
                    }
                    self.events.push_back(Event::Established {
                        call: call_key,
                        ack_sdp,
                    });
                } else if offered {
                    // The answer to the offer in our 2xx to a re-INVITE
                    // without one. One the session cannot take leaves it as
                    // it was (an ACK cannot be refused).
                    let answer = req.body_text();
                    let local = call.local_sdp.as_deref().unwrap_or_default();
                    match answer.as_deref().map(|a| sdp::accept_answer(local, a)) {
                        Some(Ok((o, srtp))) => {
                            self.events.push_back(media_update(&call_key, &o, srtp));
                        }
                        Some(Err(e)) => tracing::debug!(
                            call = %call_key, code = e.warning().code,
                            "the answer in the ACK does not fit the session: media unchanged"
                        ),
                        None => tracing::debug!(
                            call = %call_key,
                            "ACK without the answer to our offer: media unchanged"
                        ),
                    }
                }
            }
            _ => self.stats.retransmits_received += 1,
        }
    }

    pub(super) fn handle_cancel(
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
            .unwrap_or_else(|| self.rng.tag());
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

    pub(super) fn reject(
        &mut self,
        now: Instant,
        call: &CallKey,
        status: u16,
        retry_after: Option<u32>,
        warning: Option<Warning>,
        reason: EndReason,
    ) {
        let Some(c) = self.calls.get(call) else {
            return;
        };
        if c.state != CallState::Offered {
            return;
        }
        let (tx, tag) = (c.invite_tx, c.dialog.local_tag.clone());
        let mut extra = Vec::new();
        if let Some(s) = retry_after {
            extra.push(Header::new("Retry-After", s.to_string()));
        }
        if let Some(w) = warning {
            // warn-agent: the hostport this call's responses carry in Contact.
            let agent = match self.servers.get(&tx) {
                Some(t) => self.config.local_for(t.transport),
                None => self.config.local_addr,
            };
            extra.push(Header::new("Warning", w.header_value(agent)));
        }
        self.invite_final_error(now, tx, status, Some(&tag), extra);
        self.end_call(call, reason);
    }
}

/// What the call learns from the peer's new description: where its media is
/// now, and whether it takes ours (not on hold, and an address to send to).
fn media_update(
    call: &CallKey,
    o: &sdp::Offer,
    srtp: Option<crate::media::srtp::CryptoAttr>,
) -> Event {
    Event::MediaUpdate {
        call: call.clone(),
        remote: SocketAddr::new(o.addr, o.port),
        peer_receives: o.direction.peer_receives() && !o.addr.is_unspecified() && o.port != 0,
        srtp,
    }
}
