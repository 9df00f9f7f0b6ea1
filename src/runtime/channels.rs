//! The messages the runtime's tasks send each other: [`SipIn`] into the SIP task
//! (from TCP and TLS connections, call tasks and the shutdown sequence) and [`CallInput`]
//! into one call task (from the SIP task and the call's own HTTP actions).
//!
//! They live apart from both tasks so that neither task's module imports the other.

use std::net::SocketAddr;

use crate::call::CallOutcome;
pub use crate::runtime::tcp::{InFlight, TcpWriter};
use crate::sip::{CallKey, Command as SipCommand, Event as SipEvent, Transport};
use crate::vars::Vars;

/// Inputs of the SIP task.
#[derive(Debug)]
pub enum SipIn {
    /// One framed message from a TCP or TLS connection (`transport` says
    /// which). It holds its bytes of the connections' shared in-flight budget
    /// until the SIP task drops it.
    Tcp {
        transport: Transport,
        peer: SocketAddr,
        data: Vec<u8>,
        in_flight: InFlight,
    },
    /// A TCP or TLS connection is up; responses for `peer` go to `writer`.
    TcpOpened {
        transport: Transport,
        peer: SocketAddr,
        writer: TcpWriter,
    },
    /// That connection closed (`id`: [`TcpWriter::id`]).
    TcpClosed {
        transport: Transport,
        peer: SocketAddr,
        id: u64,
    },
    /// A call asks the endpoint to do something (answer, BYE, REFER…).
    Command(SipCommand),
    /// A call task ended.
    CallGone(CallKey),
    /// Shutdown: end every live call now.
    TerminateAll,
    /// Shutdown: remove our trunk registrations; the sender fires when done.
    Unregister(tokio::sync::oneshot::Sender<()>),
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
