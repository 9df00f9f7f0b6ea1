//! One datagram into the normaliser and the endpoint: must never panic, and whatever
//! the endpoint sends must parse back without a defect.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use sspr_ivr::sip::message::{self, Datagram};
use sspr_ivr::sip::{Command, Endpoint, EndpointConfig, Event, Transport};

fuzz_target!(|data: &[u8]| {
    let _ = message::parse(data);
    let now = Instant::now();
    let mut ep = Endpoint::new(EndpointConfig::new("127.0.0.1:5060".parse().unwrap(), "fuzz"));
    ep.handle_datagram(now, Transport::Udp, "127.0.0.1:5070".parse().unwrap(), data);
    while let Some(ev) = ep.poll_event() {
        if let Event::IncomingCall(ic) = ev {
            ep.handle_command(now, Command::Answer { call: ic.call, sdp: "v=0\r\n".into() });
        }
    }
    while let Some(t) = ep.poll_transmit() {
        match message::parse(&t.payload) {
            Ok(Datagram::Message(p)) => assert!(p.defect.is_none()),
            other => panic!("endpoint sent unparseable output: {other:?}"),
        }
    }
});
