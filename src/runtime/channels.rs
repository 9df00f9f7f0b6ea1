//! The messages the runtime's tasks send each other: [`SipIn`] into the SIP task
//! (from TCP connections, call tasks and the shutdown sequence) and [`CallInput`]
//! into one call task (from the SIP task and the call's own HTTP actions).
//!
//! They live apart from both tasks so that neither task's module imports the other.

use std::net::SocketAddr;

use crate::call::CallOutcome;
pub use crate::runtime::tcp::{InFlight, TcpWriter};
use crate::sip::{CallKey, Command as SipCommand, Event as SipEvent};
use crate::vars::Vars;

/// Inputs of the SIP task.
#[derive(Debug)]
pub enum SipIn {
    /// One framed message from a TCP connection. It holds its bytes of the
    /// TCP connections' shared in-flight budget until the SIP task drops it.
    Tcp {
        peer: SocketAddr,
        data: Vec<u8>,
        in_flight: InFlight,
    },
    /// A TCP connection is up; responses for `peer` go to `writer`.
    TcpOpened { peer: SocketAddr, writer: TcpWriter },
    /// That connection closed (`id`: [`TcpWriter::id`]).
    TcpClosed { peer: SocketAddr, id: u64 },
    /// A call asks the endpoint to do something (answer, BYE, REFER…).
    Command(SipCommand),
    /// A call task ended.
    CallGone(CallKey),
    /// Shutdown: end every live call now.
    TerminateAll,
}

/// What reaches a call task from outside.
#[derive(Debug)]
pub enum CallInput {
    Sip(SipEvent),
    ActionDone {
        id: u64,
        outcome: String,
        outputs: Vars,
    },
    Terminate(CallOutcome),
}
