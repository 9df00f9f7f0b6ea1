//! Our handling of each RFC 4475 torture message, shared by the sans-IO test
//! (`tests/sip_torture.rs`) and the over-UDP test against the running server
//! (`tests/torture_udp.rs`), so the two can never disagree.
#![allow(dead_code)]

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Answered with exactly this final status (and nothing else).
    Status(u16),
    /// A valid INVITE: 100 Trying + Event::IncomingCall; we then Reject with 603.
    Call,
    /// A malformed message: nothing sent, counted as dropped.
    Dropped,
    /// A well-formed response matching no transaction of ours: it must parse, and is
    /// then dropped as stray (nothing sent).
    Stray,
}

use Expect::*;

/// Our handling of each message. Where the RFC leaves a choice ("may reject", "liberal"),
/// this endpoint is strict and answers 400. REGISTER/MESSAGE get 405 with Allow: this
/// endpoint is not a registrar. `sdp01` gets 406 (the RFC's first choice). Over UDP
/// against the running server, `Call` is answered 200 (the test ACKs and BYEs it), and
/// `Dropped`/`Stray` mean nothing comes back.
pub const TABLE: &[(&str, Expect)] = &[
    ("wsinv.dat", Status(481)),
    ("intmeth.dat", Status(501)),
    ("esc01.dat", Call),
    ("escnull.dat", Status(405)),
    ("esc02.dat", Status(501)),
    ("lwsdisp.dat", Status(200)),
    ("longreq.dat", Call),
    ("dblreq.dat", Status(405)),
    ("semiuri.dat", Status(200)),
    ("transports.dat", Status(200)),
    ("mpart01.dat", Status(405)),
    ("unreason.dat", Stray),
    ("noreason.dat", Stray),
    ("badinv01.dat", Status(400)),
    ("clerr.dat", Status(400)),
    ("ncl.dat", Status(400)),
    ("scalar02.dat", Status(400)),
    ("scalarlg.dat", Dropped),
    ("quotbal.dat", Status(400)),
    ("ltgtruri.dat", Status(400)),
    ("lwsruri.dat", Status(400)),
    ("lwsstart.dat", Status(400)),
    ("trws.dat", Status(400)),
    ("escruri.dat", Status(400)),
    ("baddate.dat", Call),
    ("regbadct.dat", Status(400)),
    ("badaspec.dat", Status(400)),
    ("baddn.dat", Status(400)),
    ("badvers.dat", Status(505)),
    ("mismatch01.dat", Status(400)),
    ("mismatch02.dat", Status(501)),
    ("bigcode.dat", Dropped),
    ("badbranch.dat", Status(200)),
    ("insuf.dat", Status(400)),
    ("unkscm.dat", Status(416)),
    ("novelsc.dat", Status(416)),
    ("unksm2.dat", Status(405)),
    ("bext01.dat", Status(420)),
    ("invut.dat", Status(415)),
    ("regaut01.dat", Status(405)),
    ("multi01.dat", Status(400)),
    ("mcl01.dat", Status(400)),
    ("bcast.dat", Stray),
    ("zeromf.dat", Status(200)),
    ("cparam01.dat", Status(405)),
    ("cparam02.dat", Status(405)),
    ("regescrt.dat", Status(405)),
    ("sdp01.dat", Status(406)),
    ("inv2543.dat", Call),
];

/// Rows whose status is our choice among what the RFC allows rather than a code the
/// manifest names (valid requests answered normally, REGISTER at a non-registrar,
/// RFC 2543 branch fallback).
pub const NORMAL_HANDLING: &[&str] = &[
    // An INVITE with a To tag for a dialog we do not have: 481 (RFC 3261 §12.2.2).
    "wsinv.dat",
    "escnull.dat",
    "lwsdisp.dat",
    "dblreq.dat",
    "semiuri.dat",
    "transports.dat",
    "mpart01.dat",
    "badbranch.dat",
    "unksm2.dat",
    "regaut01.dat",
    "zeromf.dat",
    "cparam01.dat",
    "cparam02.dat",
    "regescrt.dat",
];
