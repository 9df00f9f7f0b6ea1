//! Where every RTP packet leaves the process: one batch per call-shard pass,
//! handed to the kernel in one `io_uring_enter` instead of one `sendto` each.
//!
//! Every call has a socket of its own (its port is in its SDP), so
//! `sendmmsg` — one socket, many datagrams — cannot batch across calls, and a
//! call has one packet per 20 ms. An io_uring submission queue can: the shard
//! queues each due packet with [`Egress::push`] (socket, destination, bytes,
//! copied into the batch) and [`Egress::flush`] submits them all with one
//! syscall (`IORING_OP_SEND` with a destination address — a `sendto`; on a
//! kernel older than 6.0, which has no address on it, `IORING_OP_SENDMSG`;
//! `MSG_DONTWAIT`: a send that would block fails at once, as a `sendto` on a
//! non-blocking socket would, so the wait for the completions does not block; a
//! late packet is worth nothing). Where io_uring
//! is not available (old kernel, a seccomp policy that forbids it) every packet
//! goes out with its own `sendto` at `push`, as before.
//!
//! The shard flushes before it yields and before a call (and so its socket) is
//! dropped: a queued packet never outlives its socket's descriptor. A batch
//! also goes out as soon as it holds [`FLUSH_AT`] packets.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{opcode, types, IoUring};
use socket2::SockAddr;
use tracing::{debug, info};

/// Submission queue entries (a batch larger than this goes in several submits).
const RING_ENTRIES: u32 = 512;

/// A pass that has queued this many packets sends them at once, without
/// waiting for the pass to end: with calls on a pacing grid one pass can
/// serve hundreds of calls, and the first ones' packets (a prompt that
/// answers a key) should not wait for the last ones' turns. One submit per
/// 32 packets still amortises the syscall.
const FLUSH_AT: usize = 32;

/// One queued packet: its socket, destination (`None`: the socket's
/// connected peer), and where its bytes are.
struct Queued {
    fd: RawFd,
    to: Option<SocketAddr>,
    start: usize,
    len: usize,
}

/// How the ring sends a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SendOp {
    /// `IORING_OP_SEND` with `dest_addr` (Linux 6.0+): the kernel reads the
    /// buffer and the address, and no `msghdr` or `iovec` to copy in and
    /// check.
    SendTo,
    /// `IORING_OP_SENDMSG` (older kernels).
    SendMsg,
}

/// A shard's outgoing RTP (see the module docs).
pub struct Egress {
    ring: Option<IoUring>,
    op: SendOp,
    queued: Vec<Queued>,
    /// The queued packets' bytes, back to back.
    bytes: Vec<u8>,
    /// Per submitted packet, kept alive (and unmoved) until its completion.
    scratch: Scratch,
}

impl Default for Egress {
    fn default() -> Egress {
        Egress::new()
    }
}

impl Egress {
    /// Batched through io_uring when the kernel allows it, else one `sendto`
    /// per packet.
    pub fn new() -> Egress {
        let ring = match IoUring::new(RING_ENTRIES) {
            Ok(ring) => Some(ring),
            Err(e) => {
                // Once per process (every shard tries): the shipped systemd
                // unit refuses io_uring (docs/operations.md).
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(
                    || info!(error = %e, "io_uring unavailable: one sendto per RTP packet"),
                );
                None
            }
        };
        Egress::with_ring(ring)
    }

    /// One `sendto` per packet: what a process gets where io_uring is refused
    /// (the shipped systemd unit). For tests and `benches/datagram_io.rs`.
    pub fn unbatched() -> Egress {
        Egress::with_ring(None)
    }

    /// Batched through io_uring with `IORING_OP_SENDMSG` (what a kernel before
    /// 6.0 gets), if io_uring is there at all. For tests and
    /// `benches/datagram_io.rs`.
    pub fn with_sendmsg() -> Egress {
        let mut e = Egress::new();
        e.op = SendOp::SendMsg;
        e
    }

    fn with_ring(mut ring: Option<IoUring>) -> Egress {
        let op = if ring.as_mut().is_some_and(sends_to) {
            SendOp::SendTo
        } else {
            SendOp::SendMsg
        };
        Egress {
            ring,
            op,
            queued: Vec::new(),
            bytes: Vec::with_capacity(64 * 1024),
            scratch: Scratch::default(),
        }
    }

    /// Queue `packet` from socket `fd` to `to`, or, with `None`, to the peer
    /// the socket is `connect`ed to: the kernel keeps that route, and has no
    /// address to copy in and look up (sent at once without io_uring).
    pub fn push(&mut self, fd: RawFd, to: Option<SocketAddr>, packet: &[u8]) {
        if self.ring.is_none() {
            // SAFETY: `fd` is the caller's socket, open during this call.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let sock = socket2::SockRef::from(&fd);
            let sent = match to {
                Some(to) => sock.send_to(packet, &SockAddr::from(to)),
                None => sock.send(packet),
            };
            if let Err(e) = sent {
                debug!(error = %e, "rtp send error");
            }
            return;
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(packet);
        self.queued.push(Queued {
            fd,
            to,
            start,
            len: packet.len(),
        });
        if self.queued.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// Hand every queued packet to the kernel (one syscall per
    /// [`RING_ENTRIES`] packets) and wait for their results.
    pub fn flush(&mut self) {
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        let mut done = 0;
        while done < self.queued.len() {
            let batch = &self.queued[done..(done + RING_ENTRIES as usize).min(self.queued.len())];
            // The addresses, iovecs and headers must not move while the kernel uses them:
            // sized once per batch, before any pointer into them is taken.
            self.scratch.iovecs.clear();
            self.scratch.headers.clear();
            self.scratch.names.clear();
            for q in batch {
                self.scratch.names.push(q.to.map(RawAddr::from));
            }
            if self.op == SendOp::SendMsg {
                for q in batch {
                    self.scratch.iovecs.push(libc::iovec {
                        iov_base: self.bytes[q.start..].as_ptr() as *mut libc::c_void,
                        iov_len: q.len,
                    });
                }
                for i in 0..batch.len() {
                    // SAFETY: msghdr is plain data; all-zero is its empty value.
                    let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
                    if let Some(name) = &mut self.scratch.names[i] {
                        h.msg_namelen = name.len;
                        h.msg_name = (&mut name.addr as *mut libc::sockaddr_in6).cast();
                    }
                    h.msg_iov = &mut self.scratch.iovecs[i];
                    h.msg_iovlen = 1;
                    self.scratch.headers.push(h);
                }
            }
            {
                let mut sq = ring.submission();
                for (i, q) in batch.iter().enumerate() {
                    let entry = match self.op {
                        SendOp::SendTo => {
                            let send = opcode::Send::new(
                                types::Fd(q.fd),
                                self.bytes[q.start..].as_ptr(),
                                q.len as u32,
                            );
                            match &self.scratch.names[i] {
                                Some(name) => send
                                    .dest_addr((&name.addr as *const libc::sockaddr_in6).cast())
                                    .dest_addr_len(name.len),
                                None => send,
                            }
                        }
                        .flags(libc::MSG_DONTWAIT)
                        .build(),
                        SendOp::SendMsg => {
                            opcode::SendMsg::new(types::Fd(q.fd), &self.scratch.headers[i])
                                .flags(libc::MSG_DONTWAIT as u32)
                                .build()
                        }
                    };
                    // SAFETY: the header, its iovec, address and bytes stay
                    // alive and unmoved until the completions are reaped below.
                    unsafe { sq.push(&entry.user_data(i as u64)) }.expect("batch fits the ring");
                }
            }
            let n = batch.len();
            let mut reaped = 0;
            while reaped < n {
                match ring.submit_and_wait(n - reaped) {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                    Err(e) => {
                        // Nothing sane to do with the batch but drop it; the
                        // ring is left for plain sends from now on.
                        debug!(error = %e, "io_uring submit failed: one sendto per RTP packet");
                        self.ring = None;
                        self.clear();
                        return;
                    }
                }
                for cqe in ring.completion() {
                    reaped += 1;
                    if cqe.result() < 0 {
                        let e = std::io::Error::from_raw_os_error(-cqe.result());
                        debug!(error = %e, "rtp send error");
                    }
                }
            }
            done += n;
        }
        self.clear();
    }

    fn clear(&mut self) {
        self.queued.clear();
        self.bytes.clear();
        self.scratch.iovecs.clear();
        self.scratch.headers.clear();
        self.scratch.names.clear();
    }
}

/// Whether `ring` takes a destination address on `IORING_OP_SEND` (Linux
/// 6.0+; older kernels refuse the request): one real datagram from a
/// loopback socket to itself.
fn sends_to(ring: &mut IoUring) -> bool {
    let Ok(probe) = std::net::UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let Ok(to) = probe.local_addr() else {
        return false;
    };
    let to = RawAddr::from(to);
    let byte = [0u8; 1];
    let entry = opcode::Send::new(types::Fd(probe.as_raw_fd()), byte.as_ptr(), 1)
        .dest_addr((&to.addr as *const libc::sockaddr_in6).cast())
        .dest_addr_len(to.len)
        .flags(libc::MSG_DONTWAIT)
        .build();
    // SAFETY: the byte, the address and the socket outlive the wait below.
    if unsafe { ring.submission().push(&entry) }.is_err() {
        return false;
    }
    // Its completion is reaped here, whatever happens to the wait: a stray
    // one would be counted as one of the first batch's by `Egress::flush`.
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => break,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(_) => return false,
        }
    }
    let mut sent = false;
    for c in ring.completion() {
        sent = c.result() == 1;
    }
    sent
}

/// A destination as the kernel reads it: a `sockaddr_in` or `sockaddr_in6`
/// (the larger), written field by field — no 128-byte `sockaddr_storage` to
/// zero and copy per packet. (The `load` caller's `sendmmsg` uses it too.)
pub(crate) struct RawAddr {
    pub(crate) addr: libc::sockaddr_in6,
    pub(crate) len: libc::socklen_t,
}

impl From<SocketAddr> for RawAddr {
    fn from(to: SocketAddr) -> RawAddr {
        // SAFETY: plain data; all-zero is its empty value.
        let mut addr: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        match to {
            SocketAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*v4.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: a sockaddr_in (16 bytes, align 4) fits at the start
                // of a sockaddr_in6 (28 bytes, align 4).
                unsafe {
                    std::ptr::write((&mut addr as *mut libc::sockaddr_in6).cast(), sin);
                }
                RawAddr {
                    addr,
                    len: std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                }
            }
            SocketAddr::V6(v6) => {
                addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                addr.sin6_port = v6.port().to_be();
                addr.sin6_flowinfo = v6.flowinfo();
                addr.sin6_addr = libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                };
                addr.sin6_scope_id = v6.scope_id();
                RawAddr {
                    addr,
                    len: std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                }
            }
        }
    }
}

/// The `iovec`s and `msghdr`s of the batch in flight. They hold raw pointers
/// into the same [`Egress`]'s buffers and are cleared before `flush` returns,
/// so nothing points anywhere while the shard moves between threads.
#[derive(Default)]
struct Scratch {
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::msghdr>,
    /// `None`: the socket's connected peer.
    names: Vec<Option<RawAddr>>,
}

// SAFETY: see the type's docs: empty (no live pointer) whenever it can move.
unsafe impl Send for Scratch {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    /// A 6.0+ kernel takes the address on `IORING_OP_SEND` (the probe finds
    /// it); without io_uring every packet goes by `sendto`.
    #[test]
    fn a_ring_on_a_6_kernel_sends_with_an_address() {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let major: u32 = release
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let e = Egress::new();
        if e.ring.is_some() && major >= 6 {
            assert_eq!(e.op, SendOp::SendTo, "kernel {release}");
        }
    }

    /// Packets from several sockets in one batch arrive, each from its own
    /// socket's port, with their bytes intact, over IPv4 and IPv6, with an
    /// address or to a connected socket's peer; the same through
    /// `IORING_OP_SENDMSG` and through the fallback.
    #[test]
    fn a_batch_leaves_from_each_calls_own_port() {
        for (mut egress, ip) in [
            (Egress::new(), "127.0.0.1"),
            (Egress::new(), "[::1]"),
            (Egress::with_sendmsg(), "127.0.0.1"),
            (Egress::with_sendmsg(), "[::1]"),
            (Egress::unbatched(), "127.0.0.1"),
            (Egress::unbatched(), "[::1]"),
        ] {
            let sink = UdpSocket::bind(format!("{ip}:0")).unwrap();
            sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let to = sink.local_addr().unwrap();
            let calls: Vec<UdpSocket> = (0..3)
                .map(|_| UdpSocket::bind(format!("{ip}:0")).unwrap())
                .collect();
            // The last call's socket is connected to the sink: its packets go
            // without an address.
            calls[2].connect(to).unwrap();
            for round in 0..2u8 {
                for (i, c) in calls.iter().enumerate() {
                    let to = (i < 2).then_some(to);
                    egress.push(c.as_raw_fd(), to, &[round, i as u8, 0xAB]);
                }
                egress.flush();
            }
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            for _ in 0..6 {
                let (n, from) = sink.recv_from(&mut buf).expect("a packet");
                got.push((from, buf[..n].to_vec()));
            }
            for round in 0..2u8 {
                for (i, c) in calls.iter().enumerate() {
                    let want = (c.local_addr().unwrap(), vec![round, i as u8, 0xAB]);
                    assert!(got.contains(&want), "{want:?} not in {got:?}");
                }
            }
        }
    }
}
