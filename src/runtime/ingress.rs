//! Where every RTP datagram enters the process: read by the call's own turn,
//! several at a time, with the time the kernel received each one. (The `load`
//! caller reads its sockets with the same [`RecvBatch`].)
//!
//! A call's socket is **not** registered with the reactor. Every call has a
//! turn at least every packet time (its pacing deadline; the shard adds one
//! when a call has none), and each turn reads what its socket holds with one
//! `recvmmsg` (up to [`BATCH`] datagrams). So a datagram never wakes the
//! process: at 50 packets a second per caller the old per-datagram wake-up
//! (`epoll_wait`, a `recvfrom`, a `recvfrom` that says `EAGAIN`) was most of
//! what a call cost at low call counts.
//!
//! Reading late does not reorder anything: each datagram carries its kernel
//! receive time (`SO_TIMESTAMPNS`), and the call is given it as that
//! datagram's `now`, with the call's deadlines that fell before it fired
//! first — the order in which the events really happened. A digit is heard in
//! the call's next turn, which is its next packet: the first that could carry
//! the answer. That turn comes a few ms after the caller's packet, because each
//! call moves its packet times to follow its caller's
//! ([`crate::media::phase_lock`]); without that, a key waited up to a whole
//! packet time.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// At most this many datagrams per `recvmmsg` in a call's turn.
pub const BATCH: usize = 16;

/// Room for one datagram in a call's turn (an RTP packet is far smaller; a
/// longer one is cut and reported truncated).
const SLOT: usize = 2048;

/// Room for the control messages of one datagram (one `timespec`).
const CONTROL: usize = 64;

/// Ask the kernel to stamp every datagram it receives on `socket` with its
/// receive time (`SO_TIMESTAMPNS`).
pub fn enable_timestamps(socket: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid descriptor, an int option with its size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One datagram of the last batch.
pub struct Datagram<'a> {
    pub from: SocketAddr,
    pub data: &'a [u8],
    /// The kernel's receive time (wall clock; [`Clocks`] turns it into an
    /// `Instant`), if the socket has them on ([`enable_timestamps`]).
    pub received: Option<SystemTime>,
    /// Longer than the batch's slot: `data` is cut.
    pub truncated: bool,
}

/// The buffers of one `recvmmsg` (a shard has one and lends it to each call).
pub struct RecvBatch {
    batch: usize,
    slot: usize,
    data: Box<[u8]>,
    control: Box<[u8]>,
    names: Box<[libc::sockaddr_storage]>,
    iovs: Box<[libc::iovec]>,
    headers: Box<[libc::mmsghdr]>,
    len: usize,
}

// SAFETY: the raw pointers in `iovs` and `headers` point only into this
// batch's own boxed buffers, which move with it.
unsafe impl Send for RecvBatch {}

impl Default for RecvBatch {
    fn default() -> RecvBatch {
        RecvBatch::new()
    }
}

impl RecvBatch {
    /// A call turn's batch: [`BATCH`] datagrams of up to 2048 bytes.
    pub fn new() -> RecvBatch {
        RecvBatch::with_size(BATCH, SLOT)
    }

    /// Up to `batch` datagrams of up to `slot` bytes per `recvmmsg`.
    pub fn with_size(batch: usize, slot: usize) -> RecvBatch {
        let mut b = RecvBatch {
            batch,
            slot,
            data: vec![0u8; batch * slot].into_boxed_slice(),
            control: vec![0u8; batch * CONTROL].into_boxed_slice(),
            // SAFETY: all-zero is a valid sockaddr_storage, iovec and mmsghdr.
            names: (0..batch).map(|_| unsafe { zeroed() }).collect(),
            iovs: (0..batch).map(|_| unsafe { zeroed() }).collect(),
            headers: (0..batch).map(|_| unsafe { zeroed() }).collect(),
            len: 0,
        };
        for i in 0..batch {
            b.iovs[i] = libc::iovec {
                iov_base: b.data[i * slot..].as_mut_ptr().cast(),
                iov_len: slot,
            };
        }
        b
    }

    /// How many datagrams one [`RecvBatch::recv`] reads at most (a full
    /// batch means more may be waiting).
    pub fn capacity(&self) -> usize {
        self.batch
    }

    /// Read what `fd` holds, at most [`RecvBatch::capacity`] datagrams,
    /// without waiting. `Ok(0)`: nothing there.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.len = 0;
        self.recv_more(fd)
    }

    /// Read one datagram, if `fd` holds one, without waiting: a plain
    /// `recvmsg`. `recvmmsg` with room for more tries the socket once more
    /// after a datagram and finds it empty — in a call's turn, which almost
    /// always has exactly one datagram waiting (its caller's packet since the
    /// last turn), that empty second attempt was a good part of the receive
    /// path's kernel time. [`RecvBatch::recv_more`] reads the rest when the
    /// caller judges there may be more.
    pub fn recv_one(&mut self, fd: RawFd) -> io::Result<usize> {
        self.len = 0;
        self.prepare(0, 1);
        // SAFETY: header 0 points at buffers of the sizes it states, all
        // owned by `self` and alive for the call.
        let n = unsafe { libc::recvmsg(fd, &mut self.headers[0].msg_hdr, libc::MSG_DONTWAIT) };
        if n < 0 {
            return would_block_is_empty(io::Error::last_os_error());
        }
        self.headers[0].msg_len = n as libc::c_uint;
        self.len = 1;
        Ok(1)
    }

    /// Read what `fd` holds after the datagrams already read, up to
    /// [`RecvBatch::capacity`] in all, without waiting; how many were added.
    pub fn recv_more(&mut self, fd: RawFd) -> io::Result<usize> {
        let first = self.len;
        let room = self.batch - first;
        if room == 0 {
            return Ok(0);
        }
        self.prepare(first, room);
        // SAFETY: every header from `first` on points at buffers of the sizes
        // it states, all owned by `self` and alive for the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers[first..].as_mut_ptr(),
                room as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return would_block_is_empty(io::Error::last_os_error());
        }
        self.len = first + n as usize;
        Ok(n as usize)
    }

    /// Point headers `first..first + count` at their slots, ready for the kernel.
    fn prepare(&mut self, first: usize, count: usize) {
        for i in first..first + count {
            let h = &mut self.headers[i];
            h.msg_len = 0;
            h.msg_hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = self.control[i * CONTROL..].as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = CONTROL as _;
            h.msg_hdr.msg_flags = 0;
        }
    }

    /// How many datagrams the last reads left in the batch.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the last reads found nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`-th datagram of the last reads (`None` past their
    /// end, or for a source address that is neither IPv4 nor IPv6).
    pub fn get(&self, i: usize) -> Option<Datagram<'_>> {
        if i >= self.len {
            return None;
        }
        let h = &self.headers[i];
        let from = socket_addr(&self.names[i])?;
        let start = i * self.slot;
        let len = (h.msg_len as usize).min(self.slot);
        Some(Datagram {
            from,
            data: &self.data[start..start + len],
            received: received_at(&h.msg_hdr),
            truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        })
    }
}

/// The wall clock and the monotonic clock read together, to turn a kernel
/// receive time (wall clock) into an `Instant`.
#[derive(Clone, Copy, Debug)]
pub struct Clocks {
    mono: Instant,
    wall: SystemTime,
}

impl Clocks {
    pub fn new(mono: Instant) -> Clocks {
        Clocks {
            mono,
            wall: SystemTime::now(),
        }
    }

    /// The monotonic time the clocks were read at.
    pub fn mono(&self) -> Instant {
        self.mono
    }

    /// `wall` on the monotonic clock; never later than when the clocks were read.
    pub fn to_monotonic(&self, wall: SystemTime) -> Instant {
        match self.wall.duration_since(wall) {
            Ok(ago) => self.mono.checked_sub(ago).unwrap_or(self.mono),
            // Stamped "after" we read the clocks (a wall-clock step): now.
            Err(_) => self.mono,
        }
    }
}

/// A read that would have had to wait found nothing: `Ok(0)`.
fn would_block_is_empty(e: io::Error) -> io::Result<usize> {
    match e.kind() {
        io::ErrorKind::WouldBlock => Ok(0),
        _ => Err(e),
    }
}

fn received_at(msg: &libc::msghdr) -> Option<SystemTime> {
    // SAFETY: the kernel filled `msg_control` with `msg_controllen` bytes of
    // well-formed control messages; the CMSG_* walk stays inside them.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return Some(
                    UNIX_EPOCH + Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.max(0) as u32),
                );
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

fn socket_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                u32::from_be(a.sin_addr.s_addr).into(),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(s as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                a.sin6_addr.s6_addr.into(),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn bound(addr: &str) -> UdpSocket {
        let s = UdpSocket::bind(addr).expect("bind");
        s.set_nonblocking(true).expect("nonblocking");
        enable_timestamps(&s).expect("timestamps");
        s
    }

    #[test]
    fn reads_several_datagrams_in_one_call_with_their_source_and_receive_time() {
        let rx = bound("127.0.0.1:0");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let before = Instant::now();
        for i in 0..5u8 {
            tx.send_to(&[i; 172], rx.local_addr().expect("addr"))
                .expect("send");
        }
        // Loopback delivers at send time; give the softirq a moment anyway.
        std::thread::sleep(Duration::from_millis(20));
        let mut batch = RecvBatch::new();
        let n = batch.recv(rx.as_raw_fd()).expect("recv");
        let clocks = Clocks::new(Instant::now());
        assert_eq!(n, 5);
        for i in 0..5 {
            let d = batch.get(i).expect("datagram");
            assert_eq!(d.from, tx.local_addr().expect("addr"));
            assert_eq!(d.data, &[i as u8; 172][..]);
            assert!(!d.truncated);
            let at = clocks.to_monotonic(d.received.expect("kernel receive time"));
            // Received after we started sending and at least ~20 ms before the read.
            assert!(
                at + Duration::from_millis(5) >= before,
                "{at:?} vs {before:?}"
            );
            assert!(at + Duration::from_millis(15) <= clocks.mono);
        }
        assert!(batch.get(5).is_none());
        assert_eq!(batch.recv(rx.as_raw_fd()).expect("recv"), 0, "drained");
    }

    #[test]
    fn one_datagram_then_the_rest_in_order_after_it() {
        let rx = bound("127.0.0.1:0");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut batch = RecvBatch::new();
        assert_eq!(batch.recv_one(rx.as_raw_fd()).expect("recv"), 0, "empty");
        assert!(batch.is_empty());
        for i in 0..3u8 {
            tx.send_to(&[i; 20], rx.local_addr().expect("addr"))
                .expect("send");
        }
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(batch.recv_one(rx.as_raw_fd()).expect("recv"), 1);
        assert_eq!(batch.len(), 1);
        let d = batch.get(0).expect("datagram");
        assert_eq!(
            (d.from, d.data),
            (tx.local_addr().expect("addr"), &[0u8; 20][..])
        );
        assert!(d.received.is_some(), "receive time on the single read too");
        assert!(batch.get(1).is_none());
        // The rest land after the first, in the order they were sent.
        assert_eq!(batch.recv_more(rx.as_raw_fd()).expect("recv"), 2);
        assert_eq!(batch.len(), 3);
        for i in 0..3u8 {
            assert_eq!(batch.get(i as usize).expect("datagram").data, &[i; 20][..]);
        }
        assert_eq!(batch.recv_more(rx.as_raw_fd()).expect("recv"), 0, "drained");
        assert_eq!(batch.len(), 3, "an empty read keeps what was read");
        // A new read starts a new batch.
        assert_eq!(batch.recv_one(rx.as_raw_fd()).expect("recv"), 0);
        assert!(batch.get(0).is_none());
    }

    #[test]
    fn a_full_socket_is_read_a_batch_at_a_time_and_a_long_datagram_is_cut() {
        let rx = bound("[::1]:0");
        let tx = UdpSocket::bind("[::1]:0").expect("bind");
        let to = rx.local_addr().expect("addr");
        for _ in 0..BATCH + 3 {
            tx.send_to(&[7u8; 100], to).expect("send");
        }
        tx.send_to(&vec![9u8; SLOT + 100], to).expect("send");
        std::thread::sleep(Duration::from_millis(20));
        let mut batch = RecvBatch::new();
        assert_eq!(batch.recv(rx.as_raw_fd()).expect("recv"), BATCH);
        assert_eq!(batch.recv(rx.as_raw_fd()).expect("recv"), 4);
        let long = batch.get(3).expect("datagram");
        assert!(long.truncated);
        assert_eq!(long.data.len(), SLOT);
        assert_eq!(long.from, tx.local_addr().expect("addr"));
    }
}
