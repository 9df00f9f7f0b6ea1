//! Batched UDP for the `load` caller ([`super::load`]): `recvmmsg` with the kernel's
//! receive timestamp of every datagram (`SO_TIMESTAMPNS`; the server's
//! [`super::ingress::RecvBatch`]), and `sendmmsg` of many
//! datagrams, each to its own destination, in one system call.
//!
//! Why: one load caller has to carry thousands of calls' RTP both ways on one core
//! (50 packets a second each way per call), so it cannot afford a system call per
//! packet, and the server's packet timing has to be measured where the kernel
//! received each packet, not when the caller got round to reading it — on a busy
//! machine the two differ by the caller's own scheduling delay. IPv4 only (the load
//! caller runs on loopback); Linux only.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

use super::egress::RawAddr;

/// Datagrams per system call.
pub const BATCH: usize = 64;
/// Largest datagram kept (RTP with a 20 ms G.711 payload is 172 bytes).
pub const MAX_DATAGRAM: usize = 512;

/// Open a non-blocking UDP socket on `ip:0` with receive and send buffers of `buf`
/// bytes (forced past `rmem_max` when we may), receive timestamps on.
pub fn bind(ip: Ipv4Addr, buf: usize) -> io::Result<UdpSocket> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    s.bind(&SocketAddr::from((ip, 0)).into())?;
    s.set_nonblocking(true)?;
    let _ = s.set_recv_buffer_size(buf);
    let _ = s.set_send_buffer_size(buf);
    let size = buf as libc::c_int;
    // SAFETY: setsockopt with a pointer to a live c_int and its size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    super::ingress::enable_timestamps(&s)?;
    Ok(s.into())
}

/// Buffers for one `recvmmsg` of up to [`BATCH`] datagrams of up to
/// [`MAX_DATAGRAM`] bytes, each with its kernel receive time: the server's own
/// [`super::ingress::RecvBatch`], sized for the load caller.
pub fn recv_batch() -> super::ingress::RecvBatch {
    super::ingress::RecvBatch::with_size(BATCH, MAX_DATAGRAM)
}

/// A kernel receive time as nanoseconds since the epoch (0: none).
pub fn epoch_ns(t: Option<std::time::SystemTime>) -> u64 {
    t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Datagrams waiting for one `sendmmsg`, reused.
pub struct SendBatch {
    bufs: Vec<[u8; MAX_DATAGRAM]>,
    lens: Vec<usize>,
    addrs: Vec<RawAddr>,
    /// Datagrams the kernel refused (full send buffer or an error), over all flushes.
    pub dropped: u64,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            bufs: Vec::with_capacity(BATCH),
            lens: Vec::with_capacity(BATCH),
            addrs: Vec::with_capacity(BATCH),
            dropped: 0,
        }
    }
}

impl SendBatch {
    /// Queue `data` for `to`; sends the batch on `sock` first when it is full.
    pub fn push(&mut self, sock: &UdpSocket, to: SocketAddrV4, data: &[u8]) {
        if self.lens.len() == BATCH {
            self.flush(sock);
        }
        let n = data.len().min(MAX_DATAGRAM);
        let i = self.lens.len();
        if self.bufs.len() <= i {
            self.bufs.push([0; MAX_DATAGRAM]);
        }
        self.bufs[i][..n].copy_from_slice(&data[..n]);
        self.lens.push(n);
        self.addrs.push(RawAddr::from(SocketAddr::V4(to)));
    }

    /// Send everything queued.
    pub fn flush(&mut self, sock: &UdpSocket) {
        let total = self.lens.len();
        let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for i in 0..total {
            iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: self.lens[i],
            };
            let h = &mut hdrs[i].msg_hdr;
            let to = &mut self.addrs[i];
            h.msg_namelen = to.len;
            h.msg_name = (&mut to.addr as *mut libc::sockaddr_in6).cast();
            h.msg_iov = &mut iov[i];
            h.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < total {
            // SAFETY: headers sent..total point at live buffers owned by self.
            let n = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    hdrs.as_mut_ptr().add(sent),
                    (total - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                // Skip the datagram the kernel refused and go on with the rest.
                self.dropped += 1;
                sent += 1;
            } else {
                sent += n as usize;
            }
        }
        self.lens.clear();
        self.addrs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_with_receive_timestamps() {
        let a = bind(Ipv4Addr::LOCALHOST, 1 << 20).unwrap();
        let b = bind(Ipv4Addr::LOCALHOST, 1 << 20).unwrap();
        let SocketAddr::V4(to) = b.local_addr().unwrap() else {
            panic!("v4")
        };
        let mut out = SendBatch::default();
        for i in 0..(BATCH + 6) {
            out.push(&a, to, &[i as u8; 172]);
        }
        out.flush(&a);
        assert_eq!(out.dropped, 0);
        let mut inb = recv_batch();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < BATCH + 6 && std::time::Instant::now() < deadline {
            let n = inb.recv(b.as_raw_fd()).unwrap();
            for i in 0..n {
                let d = inb.get(i).unwrap();
                assert_eq!(d.data.len(), 172);
                assert_eq!(d.from, a.local_addr().unwrap());
                assert!(epoch_ns(d.received) > 0, "no kernel timestamp");
                got.push(d.data[0]);
            }
        }
        let want: Vec<u8> = (0..(BATCH + 6)).map(|i| i as u8).collect();
        assert_eq!(got, want);
    }
}
