//! Non-INVITE server transactions (RFC 3261 §17.2.2) and the in-dialog requests they
//! carry: BYE, INFO (DTMF relay, RFC 6086), UPDATE (session refresh, answered with the
//! same session; a new offer crossing ours gets `491`), NOTIFY for our REFER (RFC 3515 §2.4.4), and `603` for anything else
//! in a dialog. A final response is kept for retransmitted requests until Timer J.
//! Stateless answers (RFC 3261 §8.2.7) for OPTIONS and `481` build no state.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::super::message::Header;
use super::super::timer::Timer;
use super::super::transaction::{response_to, set_body, ServerState, ServerTransaction};
use super::super::validate::Request;
use super::super::{CallKey, EndReason, Event, ReferStatus, Transport};
use super::bodies::{parse_dtmf, parse_dtmf_relay, sipfrag_status};
use super::budget::footprint;
use super::session_timer;
use super::{CallState, Endpoint, Owner, CONTACT_USER};

impl Endpoint {
    /// Answer without a transaction (RFC 3261 §8.2.7): a retransmitted request simply
    /// gets the same answer again.
    pub(super) fn respond_stateless(
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

    #[allow(clippy::too_many_arguments)]
    pub(super) fn respond_non_invite(
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
        // Completed: keep the response for retransmitted requests (Timer J), if
        // the transaction budget has room (else a retransmission is answered anew).
        let call = Some(CallKey(req.call_id.clone()));
        let mut tx = ServerTransaction {
            key: key.clone(),
            invite: false,
            request: req,
            source,
            transport,
            state: ServerState::Completed,
            last_response: Some(payload),
            interval: self.t1(),
            call,
            size: 0,
        };
        tx.request.msg.body = Vec::new();
        tx.size = footprint(&tx);
        if !self.make_room(tx.size) {
            self.stats.shed_no_room += 1;
            return;
        }
        let id = self.id();
        self.server_bytes += tx.size;
        self.servers.insert(id, tx);
        self.server_index.insert(key, id);
        self.finish_server(id);
        let j = if transport.is_reliable() {
            Duration::ZERO
        } else {
            self.t1() * 64
        };
        self.timers.set(Owner::Server(id), Timer::J, now + j);
    }

    /// 481 Call/Transaction Does Not Exist (RFC 3261 §12.2.2, §9.2), sent
    /// statelessly so that stray requests build no state.
    pub(super) fn respond_no_such_transaction(
        &mut self,
        transport: Transport,
        source: SocketAddr,
        req: &Request,
    ) {
        let tag = self.rng.tag();
        self.respond_stateless(transport, source, req, 481, Some(tag), Vec::new());
    }

    pub(super) fn handle_in_dialog(
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
                let reason = crate::sip::peer_reason(&req.msg);
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
                self.end_call(&call_key, EndReason::RemoteBye { reason });
            }
            "INFO" => self.handle_info(now, transport, source, key, req, call_key, tag),
            "UPDATE" => {
                let contact = self.calls[&call_key]
                    .dialog
                    .contact(CONTACT_USER, self.config.local_for(transport));
                // Our offer in a 2xx whose ACK (with the answer) has not
                // come: a new offer now would cross it. `491`, and the
                // caller tries again later (RFC 3311 §5.2).
                let call = &self.calls[&call_key];
                let crossing = call
                    .pending_2xx
                    .as_ref()
                    .is_some_and(|p| p.offers || (p.initial && call.late_offer));
                // A session refresh (RFC 4028) too; under our Min-SE: 422.
                let asked = session_timer::ask(&req.msg);
                // An UPDATE without an offer gets no SDP back.
                let (status, extra, body) = match req.body_text() {
                    _ if asked == session_timer::Ask::TooSmall => {
                        (422, session_timer::too_small(), None)
                    }
                    Some(_) if crossing => (491, Vec::new(), None),
                    offer => match offer.map_or(Ok(None), |o| {
                        self.answer_reoffer(&call_key, Some(o), transport)
                    }) {
                        Ok(sdp) => {
                            let granted = asked.granted();
                            self.restart_session_timer(now, &call_key, granted);
                            let mut extra = vec![Header::new("Contact", contact)];
                            extra.extend(granted.into_iter().flat_map(|t| t.headers()));
                            (200, extra, sdp.map(|s| ("application/sdp", s)))
                        }
                        // The session goes on as it was (RFC 3311 §5.2).
                        Err(warning) => (488, vec![warning], None),
                    },
                };
                self.respond_non_invite(
                    now,
                    transport,
                    source,
                    key,
                    req,
                    status,
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
    pub(super) fn handle_info(
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
    pub(super) fn handle_notify(
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
}
