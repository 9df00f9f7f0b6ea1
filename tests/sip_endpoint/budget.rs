//! The server-transaction budget under a flood of refused INVITEs: bounded in number
//! and bytes, every request still answered, live transactions never dropped.

use super::*;

fn flood_cfg(max: usize, bytes: usize) -> EndpointConfig {
    let mut cfg = EndpointConfig::new("127.0.0.1:5060".parse().unwrap(), "sspr-ivr-test");
    cfg.max_server_transactions = max;
    cfg.max_server_transaction_bytes = bytes;
    cfg
}

/// An INVITE with a body of `body_len` bytes (an SDP offer padded with attributes).
fn big_invite(n: usize, body_len: usize) -> Vec<u8> {
    let mut body = OFFER.to_string();
    while body.len() < body_len {
        body.push_str("a=x-padding:0123456789abcdef0123456789abcdef\r\n");
    }
    let call_id = format!("flood-{n}");
    let branch = format!("z9hG4bKflood{n}");
    Req::new("INVITE", &call_id, &branch, 1)
        .extra("Content-Type: application/sdp\r\n")
        .body(&body)
        .bytes()
}

#[test]
fn refused_invites_are_bounded_in_number_and_bytes() {
    let mut h = Harness::with(flood_cfg(100, 1 << 20));
    let mut finals = 0;
    for n in 0..2000 {
        h.ep.handle_datagram(h.now, Transport::Udp, caller(), &big_invite(n, 8000));
        for ev in h.events() {
            if let Event::IncomingCall(ic) = ev {
                h.cmd(Command::Reject {
                    call: ic.call,
                    status: 503,
                    retry_after: Some(30),
                    warning: None,
                });
            }
        }
        finals += h.statuses().iter().filter(|s| **s >= 200).count();
        let (count, bytes) = h.ep.server_transactions();
        assert!(count <= 100, "{count} transactions after {n} INVITEs");
        assert!(bytes <= 1 << 20, "{bytes} bytes after {n} INVITEs");
    }
    // The last rejection's Terminated event.
    assert!(matches!(h.events()[..], [Event::Terminated { .. }]));
    // Every INVITE was answered with its final response…
    assert_eq!(finals, 2000);
    // …the kept ones hold no 8 kB bodies (well under the byte budget)…
    let (count, bytes) = h.ep.server_transactions();
    assert_eq!(count, 100);
    assert!(bytes < 100 * 4000, "{bytes}");
    // …and the newest still absorb retransmissions: the same 503 again, no new call.
    h.ep.handle_datagram(h.now, Transport::Udp, caller(), &big_invite(1999, 8000));
    assert_eq!(h.statuses(), [503]);
    let ev = h.events();
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(h.ep.stats().shed_no_room, 0);
}

#[test]
fn when_live_transactions_fill_the_budget_a_new_invite_gets_503_statelessly() {
    let mut h = Harness::with(flood_cfg(5, 1 << 20));
    for n in 0..5 {
        h.ep.handle_datagram(h.now, Transport::Udp, caller(), &big_invite(n, 100));
        assert_eq!(h.statuses(), [100]);
        assert_eq!(h.events().len(), 1, "IncomingCall {n}");
    }
    // Five calls waiting for the application: none of them may be dropped.
    h.ep.handle_datagram(h.now, Transport::Udp, caller(), &big_invite(5, 100));
    let out = h.out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.status(), Some(503));
    assert_eq!(out[0].1.header("Retry-After"), Some("30"));
    assert!(h.events().is_empty(), "no call for the refused INVITE");
    assert_eq!(h.ep.stats().shed_no_room, 1);
    assert_eq!(h.ep.server_transactions().0, 5);
    assert_eq!(h.ep.active_calls(), 5);
}

#[test]
fn an_options_flood_is_answered_and_builds_no_state() {
    let mut h = Harness::with(flood_cfg(50, 1 << 20));
    // Two calls ringing: live transactions that must survive the flood.
    for n in 0..2 {
        h.ep.handle_datagram(h.now, Transport::Udp, caller(), &big_invite(n, 100));
        assert_eq!(h.events().len(), 1);
    }
    h.out();
    for n in 0..5000 {
        let (call, branch) = (format!("o{n}"), format!("z9hG4bKo{n}"));
        h.send(&Req::new("OPTIONS", &call, &branch, 1));
        assert_eq!(h.statuses(), [200], "OPTIONS {n}");
        assert_eq!(h.ep.server_transactions().0, 2, "OPTIONS {n}");
    }
    assert_eq!(h.ep.stats().requests_received.get("OPTIONS"), Some(&5000));
    // Both ringing calls can still be answered.
    for n in 0..2 {
        h.cmd(Command::Answer {
            call: CallKey(format!("flood-{n}")),
            sdp: ANSWER.into(),
        });
        assert_eq!(h.statuses(), [200], "call {n}");
    }
    assert_eq!(h.ep.active_calls(), 2);
}
