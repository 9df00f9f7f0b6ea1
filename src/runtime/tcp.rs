//! SIP over TCP (RFC 3261 §18.3): the accept loop and one task per connection,
//! under limits that keep a flood of connections from starving calls.
//!
//! Each connection frames its byte stream into messages with [`StreamDecoder`]
//! and hands them to the SIP task; responses for the peer come back through the
//! connection's [`TcpWriter`]. A connection is closed by the server when
//!
//! - it would be over `sip.tcp_max_connections` in all, or over
//!   `sip.tcp_max_connections_per_source` from its IP address (closed at accept,
//!   before a byte is read);
//! - a message is not complete `sip.tcp_message_timeout` after its first byte
//!   (slowloris: a request line that never ends);
//! - no complete message arrived for `sip.tcp_idle_timeout` and no call uses it
//!   (CRLF keepalives do not count);
//! - more than `sip.tcp_write_queue_bytes` wait to be written (a peer that does
//!   not read);
//! - its framing is broken (a stream cannot be resynchronised).
//!
//! Messages read but not yet handled by the SIP task are bounded in bytes
//! across all connections ([`IN_FLIGHT_BYTES`]): when the SIP task falls
//! behind, connections stop reading and TCP flow control pushes back on the
//! peers, instead of the queue growing.
//!
//! TLS connections ([`crate::runtime::tls`]) are served by the same code once
//! their handshake is done ([`Context::serve`]), under their own [`Context`]:
//! the same limits, tagged [`Transport::Tls`].
//!
//! The global cap is also lowered at start-up so that the process's descriptor
//! limit keeps room for every call's sockets and files ([`connection_cap`]): a
//! flood of connections is refused before a call is.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::SipConfig;
use crate::ops::metrics::{Metrics, TcpCloseReason};
use crate::runtime::channels::SipIn;
use crate::sip::framing::StreamDecoder;
use crate::sip::Transport;

/// Descriptors kept for everything but calls and TCP connections: listeners,
/// the admin server and its clients, the audit spool, HTTP connections to
/// backends, logging, the runtime's own.
const BASE_DESCRIPTORS: u64 = 256;
/// Bytes read from a connection at a time.
const READ_CHUNK: usize = 4096;
/// Bytes of framed messages on their way to the SIP task, all connections together.
pub const IN_FLIGHT_BYTES: usize = 8 * 1024 * 1024;

/// A message's share of [`IN_FLIGHT_BYTES`], given back on drop.
pub type InFlight = tokio::sync::OwnedSemaphorePermit;

/// The TCP limits in force (see the module docs).
#[derive(Clone, Debug)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub max_per_source: usize,
    pub idle_timeout: Duration,
    pub message_timeout: Duration,
    pub write_queue_bytes: usize,
}

impl TcpLimits {
    /// The configured limits, with the global cap lowered to `cap`.
    pub fn new(sip: &SipConfig, cap: usize) -> Self {
        TcpLimits {
            max_connections: sip.tcp_max_connections.min(cap),
            max_per_source: sip.tcp_max_connections_per_source,
            idle_timeout: sip.tcp_idle_timeout,
            message_timeout: sip.tcp_message_timeout,
            write_queue_bytes: sip.tcp_write_queue_bytes,
        }
    }
}

/// How many TCP connections fit under a descriptor limit of `nofile` once every
/// call has its own: an RTP socket and an HTTP connection each, plus a WAV and a
/// timeline file when recording.
pub fn connection_cap(nofile: u64, max_calls: usize, recording: bool) -> usize {
    let per_call = if recording { 4 } else { 2 };
    let reserved = BASE_DESCRIPTORS + per_call * max_calls as u64;
    usize::try_from(nofile.saturating_sub(reserved)).unwrap_or(usize::MAX)
}

/// Raise the soft descriptor limit to the hard one, and return it.
pub fn raise_descriptor_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// The sending half of a connection: a write queue bounded in bytes, and what the
/// SIP task tells the connection about the calls on it.
#[derive(Clone, Debug)]
pub struct TcpWriter {
    /// Distinguishes a connection from a later one from the same address and port.
    pub id: u64,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    overflow: CancellationToken,
    calls: Arc<AtomicUsize>,
}

impl TcpWriter {
    /// Queue `payload`; false (and the connection closes) if the queue is full.
    pub fn send(&self, payload: Vec<u8>) -> bool {
        let n = payload.len();
        if self.queued.fetch_add(n, Ordering::AcqRel) + n > self.max_queued {
            self.overflow.cancel();
            return false;
        }
        self.tx.send(payload).is_ok()
    }

    /// A call now depends on this connection: it is not closed for being idle.
    pub fn call_started(&self) {
        self.calls.fetch_add(1, Ordering::AcqRel);
    }

    /// A call that depended on this connection ended.
    pub fn call_ended(&self) {
        self.calls.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Connections open, in all and per source IP address.
#[derive(Debug, Default)]
struct Slots {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// A connection's place in [`Slots`]; given back on drop.
pub struct Slot {
    slots: Arc<Mutex<Slots>>,
    source: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        s.total -= 1;
        if let Some(n) = s.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                s.by_source.remove(&self.source);
            }
        }
    }
}

/// Connections open at once, capped in all and per source address: a place
/// is taken at accept and given back when its [`Slot`] drops. The SIP TCP and
/// TLS listeners and the admin HTTP server each have one.
#[derive(Clone)]
pub struct ConnectionCaps {
    slots: Arc<Mutex<Slots>>,
    max_total: usize,
    max_per_source: usize,
}

impl ConnectionCaps {
    pub fn new(max_total: usize, max_per_source: usize) -> ConnectionCaps {
        ConnectionCaps {
            slots: Arc::default(),
            max_total,
            max_per_source,
        }
    }

    /// A place for a connection from `source`, or which cap it would break.
    pub fn take(&self, source: IpAddr) -> Result<Slot, TcpCloseReason> {
        let mut s = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if s.total >= self.max_total {
            return Err(TcpCloseReason::Limit);
        }
        let n = s.by_source.entry(source).or_default();
        if *n >= self.max_per_source {
            return Err(TcpCloseReason::SourceLimit);
        }
        *n += 1;
        s.total += 1;
        Ok(Slot {
            slots: self.slots.clone(),
            source,
        })
    }
}

/// Whether a peer's address may be served at all (checked at accept with the
/// configuration in force then).
pub type Gate = Box<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// What every connection task of one listener shares.
pub struct Context {
    /// Peers served at all (none refused when `None`).
    gate: Option<Gate>,
    sip_tx: mpsc::UnboundedSender<SipIn>,
    limits: TcpLimits,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    next_id: AtomicU64,
    in_flight: Arc<tokio::sync::Semaphore>,
    caps: ConnectionCaps,
    transport: Transport,
}

impl Context {
    pub fn new(
        transport: Transport,
        sip_tx: mpsc::UnboundedSender<SipIn>,
        limits: TcpLimits,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
        gate: Option<Gate>,
    ) -> Arc<Context> {
        Arc::new(Context {
            gate,
            caps: ConnectionCaps::new(limits.max_connections, limits.max_per_source),
            sip_tx,
            limits,
            metrics,
            stop,
            next_id: AtomicU64::new(1),
            in_flight: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_BYTES)),
            transport,
        })
    }

    /// A place for a new connection from `peer` under the caps, or why not
    /// (counted in the metrics).
    pub fn admit(&self, peer: SocketAddr) -> Option<Slot> {
        let admitted = match &self.gate {
            Some(gate) if !gate(peer.ip()) => Err(TcpCloseReason::Untrusted),
            _ => self.caps.take(peer.ip()),
        };
        match admitted {
            Ok(slot) => Some(slot),
            Err(reason) => {
                self.metrics.tcp_closed(reason);
                debug!(%peer, reason = reason.as_str(), "SIP connection refused");
                None
            }
        }
    }

    /// Serve an accepted (and, for TLS, handshaken) stream as SIP.
    pub async fn serve<S>(self: Arc<Self>, stream: S, peer: SocketAddr, slot: Slot)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        connection(stream, peer, self, slot).await
    }
}

/// Serve SIP over TCP on `listener` ([`Context::new`]):
/// a connection refused at accept is closed at once, unread.
pub async fn accept(listener: TcpListener, ctx: Arc<Context>) {
    loop {
        tokio::select! {
            _ = ctx.stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    if let Some(slot) = ctx.admit(peer) {
                        tokio::spawn(connection(stream, peer, ctx.clone(), slot));
                    }
                }
                Err(e) => {
                    // Out of descriptors or buffers: what waits stays in the
                    // kernel's queue; calls keep their reserved descriptors.
                    warn!(error = %e, "SIP TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// One SIP-over-TCP connection: reader and writer run in this one task; when
/// either ends the connection is closed.
async fn connection<S>(stream: S, peer: SocketAddr, ctx: Arc<Context>, _slot: Slot)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let _open = ctx.metrics.tcp_opened();
    let transport = ctx.transport;
    let (rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = TcpWriter {
        id: ctx.next_id.fetch_add(1, Ordering::Relaxed),
        tx,
        queued: Arc::new(AtomicUsize::new(0)),
        max_queued: ctx.limits.write_queue_bytes,
        overflow: CancellationToken::new(),
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let id = writer.id;
    let _ = ctx.sip_tx.send(SipIn::TcpOpened {
        transport,
        peer,
        writer: writer.clone(),
    });
    let closed = tokio::select! {
        r = read_loop(rd, peer, &ctx, &writer) => r,
        () = write_loop(wr, rx, writer.queued.clone()) => None,
    };
    if let Some(reason) = closed {
        ctx.metrics.tcp_closed(reason);
        debug!(%peer, reason = reason.as_str(), "SIP TCP connection closed");
    }
    let _ = ctx.sip_tx.send(SipIn::TcpClosed {
        transport,
        peer,
        id,
    });
}

async fn write_loop<S: AsyncWrite>(
    mut wr: WriteHalf<S>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    queued: Arc<AtomicUsize>,
) {
    while let Some(buf) = rx.recv().await {
        if wr.write_all(&buf).await.is_err() {
            return;
        }
        queued.fetch_sub(buf.len(), Ordering::AcqRel);
    }
}

/// Read and frame until the peer closes (`None`) or a limit closes the
/// connection (`Some(why)`).
async fn read_loop<S: AsyncRead>(
    mut rd: ReadHalf<S>,
    peer: SocketAddr,
    ctx: &Context,
    writer: &TcpWriter,
) -> Option<TcpCloseReason> {
    let limits = &ctx.limits;
    let mut decoder = StreamDecoder::new();
    let mut buf = [0u8; READ_CHUNK];
    let mut last_message = Instant::now();
    let mut message_due: Option<Instant> = None;
    loop {
        let idle_due = last_message + limits.idle_timeout;
        let due = message_due.map_or(idle_due, |m| m.min(idle_due));
        let n = tokio::select! {
            _ = ctx.stop.cancelled() => return None,
            _ = writer.overflow.cancelled() => return Some(TcpCloseReason::WriteQueue),
            _ = sleep_until(due) => {
                let now = Instant::now();
                if message_due.is_some_and(|m| now >= m) {
                    return Some(TcpCloseReason::SlowMessage);
                }
                if writer.calls.load(Ordering::Acquire) == 0 {
                    return Some(TcpCloseReason::Idle);
                }
                last_message = now;
                continue;
            }
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            },
        };
        decoder.push(&buf[..n]);
        loop {
            match decoder.next_message() {
                Ok(Some(msg)) => {
                    // A message is at most 80 kB: always within the budget.
                    let bytes = u32::try_from(msg.len()).unwrap_or(u32::MAX);
                    let in_flight = tokio::select! {
                        _ = ctx.stop.cancelled() => return None,
                        p = ctx.in_flight.clone().acquire_many_owned(bytes) => match p {
                            Ok(p) => p,
                            Err(_) => return None,
                        },
                    };
                    last_message = Instant::now();
                    message_due = None;
                    let _ = ctx.sip_tx.send(SipIn::Tcp {
                        transport: ctx.transport,
                        peer,
                        data: msg,
                        in_flight,
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(%peer, error = %e, "SIP TCP framing error; closing");
                    return Some(TcpCloseReason::Framing);
                }
            }
        }
        if decoder.in_message() {
            message_due.get_or_insert_with(|| Instant::now() + limits.message_timeout);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    fn limits(total: usize, per_source: usize) -> TcpLimits {
        TcpLimits {
            max_connections: total,
            max_per_source: per_source,
            idle_timeout: Duration::from_secs(1),
            message_timeout: Duration::from_secs(1),
            write_queue_bytes: 10,
        }
    }

    #[test]
    fn descriptors_for_calls_come_before_connections() {
        // 4,096 descriptors, 1,000 calls: 256 + 2,000 kept, 1,840 left for TCP.
        assert_eq!(connection_cap(4096, 1000, false), 1840);
        assert_eq!(connection_cap(4096, 1000, true), 0);
        assert_eq!(connection_cap(65536, 1000, true), 65536 - 256 - 4000);
        let sip = SipConfig::default();
        assert_eq!(TcpLimits::new(&sip, 1840).max_connections, 1840);
        assert_eq!(
            TcpLimits::new(&sip, usize::MAX).max_connections,
            sip.tcp_max_connections
        );
    }

    #[test]
    fn slots_are_capped_in_all_and_per_source_and_given_back() {
        let caps = ConnectionCaps::new(3, 2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let a1 = caps.take(a).unwrap();
        let _a2 = caps.take(a).unwrap();
        assert_eq!(caps.take(a).err(), Some(TcpCloseReason::SourceLimit));
        let _b1 = caps.take(b).unwrap();
        assert_eq!(caps.take(b).err(), Some(TcpCloseReason::Limit));
        drop(a1);
        let _b2 = caps.take(b).unwrap();
        assert_eq!(caps.slots.lock().unwrap().total, 3);
    }

    #[test]
    fn a_full_write_queue_closes_the_connection() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let w = TcpWriter {
            id: 1,
            tx,
            queued: Arc::new(AtomicUsize::new(0)),
            max_queued: 10,
            overflow: CancellationToken::new(),
            calls: Arc::new(AtomicUsize::new(0)),
        };
        assert!(w.send(vec![0; 6]));
        assert!(!w.overflow.is_cancelled());
        assert!(!w.send(vec![0; 6]));
        assert!(w.overflow.is_cancelled());
    }

    #[tokio::test]
    async fn a_sip_task_that_falls_behind_pushes_back_on_the_peers() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (sip_tx, mut sip_rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let mut l = limits(10, 10);
        l.write_queue_bytes = 65536;
        l.idle_timeout = Duration::from_secs(60);
        let ctx = Context::new(
            Transport::Tcp,
            sip_tx,
            l,
            Arc::new(Metrics::new()),
            stop.clone(),
            None,
        );
        tokio::spawn(accept(listener, ctx));
        // A peer pipelines OPTIONS as fast as it can; nobody handles them.
        let msg = b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n".repeat(100);
        let mut peer = TcpStream::connect(addr).await.unwrap();
        let mut written = 0;
        while let Ok(Ok(())) =
            tokio::time::timeout(Duration::from_millis(500), peer.write_all(&msg)).await
        {
            written += msg.len();
            assert!(
                written < 512 * 1024 * 1024,
                "the peer was never pushed back"
            );
        }
        let mut queued = 0;
        while let Ok(m) = sip_rx.try_recv() {
            if let SipIn::Tcp { data, .. } = m {
                queued += data.len();
            }
        }
        assert!(written > IN_FLIGHT_BYTES, "{written} written");
        assert!(
            queued <= IN_FLIGHT_BYTES,
            "{queued} bytes queued for the SIP task"
        );
        stop.cancel();
    }
}
