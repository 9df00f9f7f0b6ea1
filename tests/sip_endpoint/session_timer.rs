//! Session timers (RFC 4028) in virtual time: what a caller that asks for them
//! gets, and when a dialog whose refreshes stop is ended.

use super::*;

const EXPIRED: &str = "Q.850 ;cause=102 ;text=\"Session timer expired\"";

impl Harness {
    /// [`Harness::answered_call_with`] `headers`, its ACK sent.
    fn timed_call(&mut self, call_id: &str, headers: &str) -> (CallKey, String, Message) {
        let (key, tag, ok) = self.answered_call_with(call_id, headers);
        self.ack(call_id, &tag, 1, "");
        (key, tag, ok)
    }

    /// An UPDATE refresh in `call_id`'s dialog carrying `headers`; our answer.
    fn refresh(&mut self, call_id: &str, tag: &str, cseq: u32, headers: &str) -> Message {
        let branch = format!("z9hG4bKup{cseq}");
        self.send(
            &Req::new("UPDATE", call_id, &branch, cseq)
                .with_to_tag(tag)
                .extra(headers),
        );
        self.out().remove(0).1
    }

    /// Run the clock to `limit`; the requests we sent, with when.
    fn requests_until(&mut self, limit: Duration) -> Vec<(Duration, Message)> {
        let mut sent = Vec::new();
        while self.step(self.t0 + limit) {
            for (_, m) in self.out() {
                if m.method().is_some() {
                    sent.push((self.at(), m));
                }
            }
        }
        sent
    }

    /// The caller's `status` to a request of ours.
    fn answer_ours(&mut self, req: &Message, status: &str, headers: &str) {
        let resp = format!(
            "SIP/2.0 {status}\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\n{headers}Content-Length: 0\r\n\r\n",
            req.header("Via").unwrap(),
            req.header("From").unwrap(),
            req.header("To").unwrap(),
            req.header("Call-ID").unwrap(),
            req.header("CSeq").unwrap(),
        );
        self.ep
            .handle_datagram(self.now, Transport::Udp, caller(), resp.as_bytes());
    }
}

/// A session interval under our Min-SE is refused with `422` and `Min-SE:
/// 90`, before any call is offered; the caller's next try with 90 s (and
/// `Require: timer`, which used to get `420`) is granted in the 200, the
/// caller refreshing.
#[test]
fn an_interval_under_min_se_gets_422_and_a_longer_one_is_granted() {
    let mut h = Harness::new();
    h.send(
        &Req::new("INVITE", "st1", "z9hG4bKst0", 1)
            .extra("Supported: timer\r\nSession-Expires: 60\r\nContent-Type: application/sdp\r\n")
            .body(OFFER),
    );
    let out = h.out();
    let statuses: Vec<_> = out.iter().map(|(_, m)| m.status().unwrap_or(0)).collect();
    assert_eq!(statuses, [100, 422]);
    assert_eq!(out[1].1.header("Min-SE"), Some("90"));
    assert!(h.events().is_empty(), "no call for a refused interval");

    let (_, _, ok) = h.timed_call("st1", "Require: timer\r\nSession-Expires: 90\r\n");
    assert_eq!(ok.header("Session-Expires"), Some("90;refresher=uac"));
    assert_eq!(ok.header("Require"), Some("timer"));
    assert_eq!(ok.header("Supported"), Some("timer"));
}

/// The caller refreshes (`refresher=uac`): with no refresh the dialog ends
/// at the interval less a third (60 s of 90) with BYE and its `Reason`; an
/// UPDATE refresh at 50 s is granted and moves the end to 110 s.
#[test]
fn a_dialog_whose_refreshes_stop_is_ended_a_third_early() {
    let mut h = Harness::new();
    let (key, _, _) = h.timed_call("st2", "Supported: timer\r\nSession-Expires: 90\r\n");
    h.events();
    let sent = h.requests_until(Duration::from_secs(100));
    // The BYE, and its retransmissions until Timer F.
    assert!(
        sent.iter().all(|(_, m)| m.method() == Some("BYE")),
        "{sent:?}"
    );
    let (at, bye) = &sent[0];
    assert_eq!((bye.method(), *at), (Some("BYE"), Duration::from_secs(60)));
    assert_eq!(bye.header("Reason"), Some(EXPIRED));
    assert_eq!(
        h.events(),
        [Event::Terminated {
            call: key,
            reason: EndReason::SessionExpired
        }]
    );

    let mut h = Harness::new();
    let (_, tag, _) = h.timed_call("st3", "Supported: timer\r\nSession-Expires: 90\r\n");
    assert!(h.requests_until(Duration::from_secs(50)).is_empty());
    h.now = h.t0 + Duration::from_secs(50);
    let ok = h.refresh(
        "st3",
        &tag,
        2,
        "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n",
    );
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.header("Session-Expires"), Some("90;refresher=uac"));
    let sent = h.requests_until(Duration::from_secs(200));
    assert_eq!(sent[0].1.method(), Some("BYE"), "{sent:?}");
    assert_eq!(sent[0].0, Duration::from_secs(110), "{sent:?}");
}

/// A refresh under our Min-SE is refused with `422` and changes nothing (the
/// dialog still ends 60 s after the INVITE); a refresh without
/// `Session-Expires` turns the timer off.
#[test]
fn a_refresh_renegotiates_the_timer() {
    let too_small = "Supported: timer\r\nSession-Expires: 30\r\n";
    let mut h = Harness::new();
    let (_, tag, _) = h.timed_call("st4", "Supported: timer\r\nSession-Expires: 90\r\n");
    let refused = h.refresh("st4", &tag, 2, too_small);
    assert_eq!(refused.status(), Some(422));
    assert_eq!(refused.header("Min-SE"), Some("90"));
    let sent = h.requests_until(Duration::from_secs(100));
    assert_eq!(
        (sent[0].1.method(), sent[0].0),
        (Some("BYE"), Duration::from_secs(60))
    );

    let mut h = Harness::new();
    let (_, tag, _) = h.timed_call("st4", "Supported: timer\r\nSession-Expires: 90\r\n");
    assert_eq!(h.refresh("st4", &tag, 2, too_small).status(), Some(422));
    let ok = h.refresh("st4", &tag, 3, "");
    assert_eq!(
        (ok.status(), ok.header("Session-Expires")),
        (Some(200), None)
    );
    assert!(h.requests_until(Duration::from_secs(600)).is_empty());
}

/// A caller that asks us to refresh (`refresher=uas`) gets UPDATEs every
/// half interval (45 s); a 200 keeps the session, a `481` (the far end lost
/// the dialog) ends it at once with the session timer's `Reason`.
#[test]
fn the_server_refreshes_when_asked_and_ends_the_call_on_481() {
    let mut h = Harness::new();
    let (key, _, ok) = h.timed_call(
        "st5",
        "Supported: timer\r\nSession-Expires: 1800;refresher=uas\r\n",
    );
    assert_eq!(ok.header("Session-Expires"), Some("1800;refresher=uas"));
    h.events();
    let sent = h.requests_until(Duration::from_secs(900));
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (at, update) = &sent[0];
    assert_eq!(
        (update.method(), *at),
        (Some("UPDATE"), Duration::from_secs(900))
    );
    assert_eq!(update.header("Session-Expires"), Some("1800;refresher=uas"));
    assert!(update.body.is_empty());
    h.answer_ours(update, "200 OK", "Session-Expires: 1800;refresher=uas\r\n");
    let sent = h.requests_until(Duration::from_secs(1800));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, Duration::from_secs(1800));
    h.answer_ours(&sent[0].1, "481 Call/Transaction Does Not Exist", "");
    let bye = h.out().remove(0).1;
    assert_eq!(bye.method(), Some("BYE"));
    assert_eq!(bye.header("Reason"), Some(EXPIRED));
    assert_eq!(
        h.events(),
        [Event::Terminated {
            call: key,
            reason: EndReason::SessionExpired
        }]
    );
}

/// A `Session-Expires` a proxy put in the INVITE of a caller that does not
/// support the extension: no timer (its 200 would carry a refresher the
/// caller cannot act on), and the call is never ended for want of refreshes.
#[test]
fn a_caller_without_timer_support_gets_no_timer() {
    let mut h = Harness::new();
    let (_, _, ok) = h.timed_call("st6", "Session-Expires: 90\r\n");
    assert_eq!(ok.header("Session-Expires"), None);
    assert_eq!(ok.header("Require"), None);
    assert!(h.requests_until(Duration::from_secs(600)).is_empty());
}

/// Our refresh goes unanswered (the far end vanished): when the UPDATE's
/// transaction gives up (Timer F, 32 s) the call ends with BYE and the
/// session timer's `Reason`.
#[test]
fn an_unanswered_refresh_ends_the_call() {
    let mut h = Harness::new();
    let (key, _, _) = h.timed_call(
        "st7",
        "Supported: timer\r\nSession-Expires: 90;refresher=uas\r\n",
    );
    h.events();
    let sent = h.requests_until(Duration::from_secs(100));
    let methods: Vec<_> = sent.iter().map(|(_, m)| m.method().unwrap()).collect();
    // The UPDATE at 45 s and its retransmissions, then the BYE at 77 s.
    assert_eq!(sent[0].0, Duration::from_secs(45));
    let bye = sent
        .iter()
        .find(|(_, m)| m.method() == Some("BYE"))
        .unwrap_or_else(|| panic!("no BYE: {methods:?}"));
    assert_eq!(bye.0, Duration::from_secs(77));
    assert_eq!(bye.1.header("Reason"), Some(EXPIRED));
    assert!(methods[..methods.iter().position(|m| *m == "BYE").unwrap()]
        .iter()
        .all(|m| *m == "UPDATE"));
    assert_eq!(
        h.events(),
        [Event::Terminated {
            call: key,
            reason: EndReason::SessionExpired
        }]
    );
}
