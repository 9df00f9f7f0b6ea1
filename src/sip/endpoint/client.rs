//! Non-INVITE client transactions (RFC 3261 §17.1.2): the requests we send inside a
//! dialog (BYE, REFER), retransmitted by Timer E on UDP and given up at Timer F, with
//! Timer K absorbing retransmitted responses. A REFER's final response, or its
//! timeout as `408`, is reported as [`ReferStatus`].

use std::time::{Duration, Instant};

use super::super::dialog::contact_value;
use super::super::message::{self, Header, NameAddr, Parsed};
use super::super::timer::Timer;
use super::super::transaction::{ClientPurpose, ClientTransaction};
use super::super::{ByeReason, CallKey, Event, ReferStatus, Transmit};
use super::{CallState, Endpoint, Owner, CONTACT_USER};

impl Endpoint {
    pub(super) fn handle_response(&mut self, now: Instant, parsed: Parsed) {
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
        match purpose {
            ClientPurpose::Refer => {
                let status = if (200..300).contains(&code) {
                    ReferStatus::Accepted
                } else {
                    ReferStatus::Rejected(code)
                };
                self.events.push_back(Event::ReferStatus { call, status });
            }
            ClientPurpose::Refresh => self.on_refresh_result(now, &call, Some(code), Some(&msg)),
            _ => {}
        }
    }

    /// BYE in the call's dialog. `reason`: why we end it (a timer, the
    /// server stopping, an answer the call cannot use), sent as its `Reason`
    /// header (RFC 3326), which traces and the caller's logs show.
    pub(super) fn send_bye(&mut self, now: Instant, call: &CallKey, reason: Option<ByeReason>) {
        let extra = ByeReason::headers(reason);
        self.send_request(now, call, "BYE", ClientPurpose::Bye, extra);
    }

    pub(super) fn send_request(
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
        let local = self.config.local_for(call.dialog.transport);
        let (msg, branch) = call.dialog.request(
            method,
            self.rng.branch(),
            local,
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

    pub(super) fn remove_client(&mut self, id: u64) -> Option<ClientTransaction> {
        let tx = self.clients.remove(&id)?;
        self.timers.stop_all(&Owner::Client(id));
        self.client_index.remove(&tx.branch);
        Some(tx)
    }

    /// Blind transfer (RFC 3515): REFER with Refer-To, Referred-By and our Contact.
    pub(super) fn send_refer(
        &mut self,
        now: Instant,
        call: &CallKey,
        target: String,
        headers: Vec<(String, String)>,
    ) {
        let Some(c) = self.calls.get(call) else {
            return;
        };
        if c.state == CallState::Offered {
            return;
        }
        let transport = c.dialog.transport;
        let local = self.config.local_for(transport);
        let contact = c.dialog.contact(CONTACT_USER, local);
        let referred_by = NameAddr::parse(&c.dialog.local_party)
            .map(|n| format!("<{}>", n.uri))
            .unwrap_or_else(|| contact_value(CONTACT_USER, local, transport));
        let refer_to = if target.trim_start().starts_with('<') {
            target
        } else {
            format!("<{target}>")
        };
        let mut extra = vec![
            Header::new("Contact", contact),
            Header::new("Refer-To", refer_to),
            Header::new("Referred-By", referred_by),
        ];
        extra.extend(headers.into_iter().map(|(n, v)| Header::new(n, v)));
        self.send_request(now, call, "REFER", ClientPurpose::Refer, extra);
    }
}
