//! Normaliser and parser table tests, and print-then-parse round trips of every
//! header this crate generates (checked by our parser and by rsip).

use std::net::SocketAddr;

use rsip::prelude::{HeadersExt, ToTypedHeader, UntypedHeader};
use sspr_ivr::sip::message::{
    self, canonical_name, parse_cseq, split_list, stamp_via, Datagram, Header, Message, NameAddr,
    ParseError, StartLine, Via,
};
use sspr_ivr::sip::transaction::response_to;

fn parsed(data: &[u8]) -> message::Parsed {
    match message::parse(data) {
        Ok(Datagram::Message(p)) => p,
        other => panic!("{other:?}"),
    }
}

#[test]
fn compact_names_expand() {
    let cases = [
        ("v", "Via"),
        ("f", "From"),
        ("t", "To"),
        ("i", "Call-ID"),
        ("m", "Contact"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("C", "Content-Type"),
        ("k", "Supported"),
        ("s", "Subject"),
        ("e", "Content-Encoding"),
        ("o", "Event"),
        ("r", "Refer-To"),
        ("b", "Referred-By"),
        ("u", "Allow-Events"),
        ("x", "Session-Expires"),
        ("y", "Identity"),
        ("a", "Accept-Contact"),
        ("call-id", "Call-ID"),
        ("cSeQ", "CSeq"),
        ("X-Custom", "X-Custom"),
        ("z", "z"),
    ];
    for (input, want) in cases {
        assert_eq!(canonical_name(input), want, "{input}");
    }
}

#[test]
fn normaliser_table() {
    struct Case {
        name: &'static str,
        input: &'static [u8],
        headers: &'static [(&'static str, &'static str)],
        body: &'static [u8],
        defect: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "compact names, folded lines, comma-joined Via",
            input: b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h1;branch=z9hG4bK1,\r\n SIP/2.0/UDP h2;branch=z9hG4bK2\r\nf: <sip:x@y>\r\n ;tag=1\r\ni: abc\r\nl: 0\r\n\r\n",
            headers: &[
                ("Via", "SIP/2.0/UDP h1;branch=z9hG4bK1"),
                ("Via", "SIP/2.0/UDP h2;branch=z9hG4bK2"),
                ("From", "<sip:x@y> ;tag=1"),
                ("Call-ID", "abc"),
                ("Content-Length", "0"),
            ],
            body: b"",
            defect: None,
        },
        Case {
            name: "leading CRLFs, tabs, space before colon, LF-only lines",
            input: b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\nTo :\t<sip:a@b>\n\tfolded\nl: 2\n\nhiEXTRA",
            headers: &[("To", "<sip:a@b> folded"), ("Content-Length", "2")],
            body: b"hi",
            defect: None,
        },
        Case {
            name: "no blank line after headers (baddn.dat)",
            input: b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n",
            headers: &[("Content-Length", "0")],
            body: b"",
            defect: None,
        },
        Case {
            name: "no Content-Length on a datagram: the rest is the body",
            input: b"OPTIONS sip:a@b SIP/2.0\r\nTo: x\r\n\r\nbody",
            headers: &[("To", "x")],
            body: b"body",
            defect: None,
        },
        Case {
            name: "Content-Length larger than the datagram",
            input: b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99\r\n\r\nshort",
            headers: &[("Content-Length", "99")],
            body: b"short",
            defect: Some("Content-Length larger than the message"),
        },
        Case {
            name: "negative Content-Length",
            input: b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n",
            headers: &[("Content-Length", "-1")],
            body: b"",
            defect: Some("negative Content-Length"),
        },
        Case {
            name: "two Content-Length headers",
            input: b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\nl: 0\r\n\r\n",
            headers: &[("Content-Length", "0"), ("Content-Length", "0")],
            body: b"",
            defect: Some("multiple Content-Length values"),
        },
        Case {
            name: "Content-Length with two values",
            input: b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0, 1\r\n\r\n",
            headers: &[("Content-Length", "0, 1")],
            body: b"",
            defect: Some("multiple Content-Length values"),
        },
        Case {
            name: "header without colon",
            input: b"OPTIONS sip:a@b SIP/2.0\r\nBroken header\r\nTo: x\r\n\r\n",
            headers: &[("To", "x")],
            body: b"",
            defect: Some("header line without a colon"),
        },
        Case {
            name: "empty Via element",
            input: b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;,,\r\n\r\n",
            headers: &[("Via", "SIP/2.0/UDP h;"), ("Via", ""), ("Via", "")],
            body: b"",
            defect: Some("empty Via element"),
        },
        Case {
            name: "extra space in the Request-Line",
            input: b"OPTIONS  sip:a@b SIP/2.0\r\nTo: x\r\n\r\n",
            headers: &[("To", "x")],
            body: b"",
            defect: Some("malformed Request-Line"),
        },
    ];
    for c in cases {
        let p = parsed(c.input);
        let got: Vec<(&str, &str)> = p
            .message
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_str()))
            .collect();
        assert_eq!(got, c.headers, "{}", c.name);
        assert_eq!(p.message.body, c.body, "{}", c.name);
        assert_eq!(p.defect, c.defect, "{}", c.name);
    }
}

#[test]
fn unusable_input_is_an_error() {
    let cases: &[(&[u8], ParseError)] = &[
        (b"", ParseError::Empty),
        (b"hello world\r\n\r\n", ParseError::NoStartLine),
        (b"\x00\xff\xfe", ParseError::NoStartLine),
        (
            b"SIP/2.0 4294967301 big\r\nVia: x\r\n\r\n",
            ParseError::BadStatusLine,
        ),
        (
            b"SIP/2.0 99 low\r\nVia: x\r\n\r\n",
            ParseError::BadStatusLine,
        ),
        (b"SIP/2.0 200 OK\r\n\r\n", ParseError::BadStatusLine),
        (b"SIP/x 200 OK\r\nVia: x\r\n\r\n", ParseError::BadStatusLine),
    ];
    for (input, err) in cases {
        assert_eq!(
            message::parse(input),
            Err(err.clone()),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    assert_eq!(message::parse(b"\r\n\r\n"), Ok(Datagram::Keepalive));
    assert_eq!(message::parse(b"\r\n"), Ok(Datagram::Keepalive));
}

#[test]
fn start_lines() {
    let p = parsed(b"SIP/2.0 200 \r\nVia: x\r\n\r\n");
    assert_eq!(
        p.message.start,
        StartLine::Response {
            version: "SIP/2.0".into(),
            code: 200,
            reason: "".into()
        }
    );
    let p = parsed("SIP/2.0 200 = 2**3 * 5**2 но\r\nVia: x\r\n\r\n".as_bytes());
    assert!(
        matches!(p.message.start, StartLine::Response { code: 200, ref reason, .. } if reason.ends_with("но"))
    );
    let p = parsed(b"OPTIONS sip:a@b sip/2.0\r\nVia: x\r\n\r\n");
    assert_eq!(p.defect, None, "SIP-Version is case-insensitive");
    let p = parsed(b"OPTIONS SIP/2.0 \r\nVia: x\r\n\r\n");
    assert_eq!(p.defect, Some("malformed Request-Line"));
    let p = parsed(b"NEWMETHOD sip:a@b SIP/7.0\r\nVia: x\r\n\r\n");
    assert_eq!(
        p.message.start,
        StartLine::Request {
            method: "NEWMETHOD".into(),
            uri: "sip:a@b".into(),
            version: "SIP/7.0".into()
        }
    );
}

#[test]
fn name_addr_table() {
    type Want = Option<(&'static str, Option<&'static str>)>;
    let cases: &[(&str, Want)] = &[
        ("<sip:a@b>;tag=1", Some(("sip:a@b", Some("1")))),
        ("\"A, B\" <sip:a@b> ; tag = 2", Some(("sip:a@b", Some("2")))),
        (
            "caller<sip:caller@example.com>;tag=323",
            Some(("sip:caller@example.com", Some("323"))),
        ),
        ("sip:a@b;tag=3", Some(("sip:a@b", Some("3")))),
        ("sip:+1555@b;user=phone", Some(("sip:+1555@b", None))),
        (
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com> ; tag = 98asjd8",
            Some(("sip:jdrosen@example.com", Some("98asjd8"))),
        ),
        ("\"Mr. J. User <sip:j.user@example.com>", None),
        ("Bell, Alexander <sip:a.g.bell@example.com>;tag=43", None),
        ("\"Watson, Thomas\" < sip:t.watson@example.org >", None),
        ("sip:user@example.com?Route=%3Csip:sip.example.com%3E", None),
        ("<sip:a@b", None),
        ("<>", None),
        ("<sip:a@b>;;", None),
    ];
    for (input, want) in cases {
        let got = NameAddr::parse(input);
        match want {
            None => assert_eq!(got, None, "{input}"),
            Some((uri, tag)) => {
                let got = got.unwrap_or_else(|| panic!("{input}"));
                assert_eq!(got.uri, *uri, "{input}");
                assert_eq!(got.tag(), *tag, "{input}");
            }
        }
    }
}

#[test]
fn via_table() {
    let v = Via::parse("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw").unwrap();
    assert_eq!(
        (v.transport.as_str(), v.sent_by.as_str()),
        ("UDP", "192.0.2.2")
    );
    assert_eq!(v.rfc3261_branch(), None);
    let v = Via::parse("SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239").unwrap();
    assert_eq!(v.rfc3261_branch(), Some("z9hG4bK30239"));
    assert_eq!(
        Via::parse("SIP/2.0/UDP h;branch=z9hG4bK")
            .unwrap()
            .rfc3261_branch(),
        None
    );
    assert!(Via::parse("SIP/2.0/UDP h;rport")
        .unwrap()
        .has_param("rport"));
    assert_eq!(Via::parse("HTTP/1.1/TCP h"), None);
    assert_eq!(Via::parse("SIP/2.0/UDP"), None);
    assert_eq!(Via::parse("SIP/2.0/UDP 192.0.2.15;;,;,,"), None);
}

#[test]
fn cseq_and_lists() {
    assert_eq!(
        parse_cseq("0009\r\n  INVITE".replace("\r\n", "").as_str()),
        Some((9, "INVITE".into()))
    );
    assert_eq!(parse_cseq("36893488147419103232 REGISTER"), None);
    assert_eq!(parse_cseq("2147483648 INVITE"), None);
    assert_eq!(
        parse_cseq("2147483647 INVITE"),
        Some((2147483647, "INVITE".into()))
    );
    assert_eq!(parse_cseq("1"), None);
    assert_eq!(parse_cseq("1 INVITE extra"), None);
    assert_eq!(
        split_list("<sip:a,b@c>, \"x,y\" <sip:d>,e"),
        ["<sip:a,b@c>", "\"x,y\" <sip:d>", "e"]
    );
}

#[test]
fn via_stamping() {
    let src: SocketAddr = "192.0.2.9:6000".parse().unwrap();
    let cases = [
        (
            "SIP/2.0/UDP h;branch=z9hG4bK1",
            "SIP/2.0/UDP h;branch=z9hG4bK1;received=192.0.2.9;rport=6000",
        ),
        (
            "SIP/2.0/UDP h;rport;branch=z9hG4bK1",
            "SIP/2.0/UDP h;branch=z9hG4bK1;received=192.0.2.9;rport=6000",
        ),
        (
            "SIP/2.0/UDP h;received=1.1.1.1;rport=1;branch=b",
            "SIP/2.0/UDP h;branch=b;received=192.0.2.9;rport=6000",
        ),
        (
            "SIP/2.0/UDP h",
            "SIP/2.0/UDP h;received=192.0.2.9;rport=6000",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(stamp_via(input, src), want);
    }
    let v6: SocketAddr = "[::1]:5060".parse().unwrap();
    assert_eq!(
        stamp_via("SIP/2.0/UDP h", v6),
        "SIP/2.0/UDP h;received=::1;rport=5060"
    );
}

/// Every header we generate, printed and parsed back by us and by rsip.
#[test]
fn generated_headers_round_trip() {
    let generated = [
        Header::new("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc;rport"),
        Header::new(
            "Via",
            "SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKdef;received=127.0.0.1;rport=5070",
        ),
        Header::new("Max-Forwards", "70"),
        Header::new("From", "<sip:ivr@127.0.0.1:5060>;tag=abc123"),
        Header::new("To", "\"Alice\" <sip:+15551234@127.0.0.1>;tag=caller1"),
        Header::new("Call-ID", "k3j4h5@127.0.0.1"),
        Header::new("CSeq", "2 BYE"),
        Header::new("Contact", "<sip:ivr@127.0.0.1:5060;transport=tcp>"),
        Header::new("Route", "<sip:127.0.0.9:5080;lr>"),
        Header::new("Record-Route", "<sip:127.0.0.9:5080;lr>"),
        Header::new("Allow", sspr_ivr::sip::ALLOW),
        Header::new("Accept", sspr_ivr::sip::ACCEPT),
        Header::new("Supported", sspr_ivr::sip::SUPPORTED),
        Header::new("Unsupported", "foo, bar"),
        Header::new("Retry-After", "30"),
        Header::new("Server", "sspr-ivr/0.1"),
        Header::new("User-Agent", "sspr-ivr/0.1"),
        Header::new("Refer-To", "<sip:agents@127.0.0.1:5090>"),
        Header::new("Referred-By", "<sip:ivr@127.0.0.1>"),
        Header::new("Event", "refer"),
        Header::new("Subscription-State", "terminated;reason=noresource"),
        Header::new("Content-Type", "application/sdp"),
    ];
    let msg = Message {
        start: StartLine::Request {
            method: "BYE".into(),
            uri: "sip:alice@127.0.0.1:5070".into(),
            version: "SIP/2.0".into(),
        },
        headers: generated.to_vec(),
        body: b"v=0\r\n".to_vec(),
    };
    let bytes = msg.to_bytes();
    let back = parsed(&bytes);
    assert_eq!(back.defect, None);
    let mut want = generated.to_vec();
    want.push(Header::new("Content-Length", "5"));
    assert_eq!(back.message.headers, want);
    assert_eq!(back.message.body, b"v=0\r\n");
    // rsip agrees on the typed headers we rely on.
    let rsip::SipMessage::Request(r) =
        rsip::SipMessage::try_from(bytes.clone()).expect("rsip parses our output")
    else {
        panic!()
    };
    assert_eq!(r.method, rsip::Method::Bye);
    let cseq = r.cseq_header().unwrap().typed().unwrap();
    assert_eq!((cseq.seq, cseq.method), (2, rsip::Method::Bye));
    assert_eq!(
        r.from_header().unwrap().tag().unwrap().unwrap().value(),
        "abc123"
    );
    assert_eq!(
        r.to_header().unwrap().tag().unwrap().unwrap().value(),
        "caller1"
    );
    assert_eq!(r.call_id_header().unwrap().value(), "k3j4h5@127.0.0.1");
    let via = r.via_header().unwrap().typed().unwrap();
    assert_eq!(via.branch().unwrap().to_string(), "z9hG4bKabc");
    assert_eq!(r.uri.auth.as_ref().unwrap().user, "alice");
    let contact = r.contact_header().unwrap().typed().unwrap();
    assert_eq!(contact.uri.host_with_port.to_string(), "127.0.0.1:5060");

    // A response built for a request keeps everything a UAC matches on.
    let req = parsed(&bytes).message;
    let src: SocketAddr = "127.0.0.1:5070".parse().unwrap();
    let resp = response_to(&req, src, 200, Some("zz"), "sspr-ivr");
    let resp_bytes = resp.to_bytes();
    let back = parsed(&resp_bytes).message;
    assert_eq!(back.headers_named("Via").count(), 2);
    assert_eq!(
        back.header("To"),
        Some("\"Alice\" <sip:+15551234@127.0.0.1>;tag=caller1"),
        "existing tag kept"
    );
    let rsip::SipMessage::Response(rr) =
        rsip::SipMessage::try_from(resp_bytes).expect("rsip parses our response")
    else {
        panic!()
    };
    assert_eq!(u16::from(rr.status_code), 200);
}

#[test]
fn uri_users() {
    let cases = [
        ("sip:echo@127.0.0.1:5060", "echo"),
        ("sip:%65cho@127.0.0.1", "echo"),
        ("sips:+15551234;npdi@host;user=phone", "+15551234;npdi"),
        (
            "sip:user;par=u%40example.net@example.com",
            "user;par=u@example.net",
        ),
        ("sip:alice:secret@host", "alice"),
        ("sip:user%00null@example.com", "user%00null"),
        ("tel:+1-555-1234;phone-context=x", "+1-555-1234"),
        ("sip:host.example.com", ""),
        ("garbage", ""),
    ];
    for (uri, user) in cases {
        assert_eq!(message::uri_user(uri), user, "{uri}");
    }
}
