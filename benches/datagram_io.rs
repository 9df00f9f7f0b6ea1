//! The kernel's cost per RTP datagram on the server's two socket paths, apart
//! from the rest of a call (issue 14; BENCHMARKS.md §16).
//!
//! Run: `cargo bench --bench datagram_io`. 500 calls' sockets on loopback,
//! each with the kernel's receive timestamps on, as the server's are.
//!
//! - **Receive**, one datagram waiting per socket (a call's ordinary turn):
//!   `recvmmsg` with room for 16 (before: it finds the datagram, then tries the
//!   socket again and finds it empty) against one `recvmsg`
//!   ([`RecvBatch::recv_one`], what a turn does now). Only the reads are timed.
//! - **Send**, one packet from each call's socket to its caller's, as one
//!   shard pass sends them ([`Egress`]: queued, then flushed every 32):
//!   io_uring `IORING_OP_SEND` with the destination address (now, Linux 6.0+),
//!   io_uring `IORING_OP_SENDMSG` (before; older kernels), and one `sendto`
//!   each (where io_uring is refused, as under the shipped systemd unit). The
//!   loopback delivery into the callers' sockets is part of a send's cost here,
//!   as it is in the server's profile; draining them is not timed.
//!
//! - **Send, connected or not** (printed after criterion's groups): the same
//!   pass from sockets `connect`ed to their callers, without an address (what
//!   a call's socket does while its caller's stream is steady), against
//!   unconnected sockets with one; the two alternate pass by pass.
//!
//! - **One port for every call, or a port per call** (`--shared-port-only`,
//!   or printed last): what the kernel would take per datagram if every call's
//!   RTP came in and went out through one socket (read in `recvmmsg` batches of
//!   64, sent in one `sendmmsg` or one io_uring batch per pass), against what a
//!   pass costs now (a `recvmsg` per call's socket, io_uring `SEND` from each
//!   call's connected socket). An experiment for BENCHMARKS.md §21; the server
//!   does not do it. Its one socket needs a 16 MB receive buffer, forced past
//!   `net.core.rmem_max`: run it as root. With `DATAGRAM_IO_SINK=<IPv4>` the sends go to that
//!   address (ports 40000 up) instead of to the callers' loopback sockets:
//!   run it in a network namespace of your own whose route to the address is a
//!   `tun` device nobody reads (`bench/datagram_sink.sh`), and a send's time no longer
//!   holds the loopback delivery into a caller's socket, which a real NIC
//!   would not do on the server's core.
//!
//! Criterion's "elements" are datagrams: its throughput line gives the cost of
//! one.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, Criterion, Throughput};
use sspr_ivr::runtime::egress::Egress;
use sspr_ivr::runtime::ingress::{enable_timestamps, RecvBatch};
use sspr_ivr::runtime::load_io;

const CALLS: usize = 500;

/// A 20 ms PCMU packet's size (12-byte header, 160 bytes of audio).
const PACKET: [u8; 172] = [0x55; 172];

fn sockets(n: usize) -> Vec<UdpSocket> {
    sockets_on("127.0.0.1", n)
}

fn sockets_on(ip: &str, n: usize) -> Vec<UdpSocket> {
    (0..n)
        .map(|_| {
            let s = UdpSocket::bind((ip, 0)).expect("bind");
            s.set_nonblocking(true).expect("nonblocking");
            enable_timestamps(&s).expect("timestamps");
            s
        })
        .collect()
}

fn drain(socks: &[UdpSocket], batch: &mut RecvBatch) {
    for s in socks {
        while batch.recv(s.as_raw_fd()).expect("drain") > 0 {}
    }
}

fn receive(c: &mut Criterion) {
    let calls = sockets(CALLS);
    let to: Vec<_> = calls
        .iter()
        .map(|s| s.local_addr().expect("addr"))
        .collect();
    let caller = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut batch = RecvBatch::new();
    let mut group = c.benchmark_group("receive_one_datagram_per_turn");
    group.throughput(Throughput::Elements(CALLS as u64));
    for (name, one) in [("recvmmsg_16_before", false), ("recvmsg_now", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    for a in &to {
                        caller.send_to(&PACKET, a).expect("send");
                    }
                    let start = Instant::now();
                    for s in &calls {
                        let n = if one {
                            batch.recv_one(s.as_raw_fd())
                        } else {
                            batch.recv(s.as_raw_fd())
                        };
                        assert_eq!(n.expect("recv"), 1);
                        black_box(batch.get(0).map(|d| d.data.len()));
                    }
                    spent += start.elapsed();
                }
                spent
            })
        });
    }
    group.finish();
}

fn send(c: &mut Criterion) {
    let calls = sockets(CALLS);
    let callers = sockets(CALLS);
    let to: Vec<_> = callers
        .iter()
        .map(|s| s.local_addr().expect("addr"))
        .collect();
    let mut batch = RecvBatch::new();
    let mut group = c.benchmark_group("send_one_packet_per_call_in_a_pass");
    group.throughput(Throughput::Elements(CALLS as u64));
    for (name, mut egress) in [
        ("io_uring_send_with_address_now", Egress::new()),
        ("io_uring_sendmsg_before", Egress::with_sendmsg()),
        ("sendto_each_without_io_uring", Egress::unbatched()),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for (s, a) in calls.iter().zip(&to) {
                        egress.push(s.as_raw_fd(), Some(*a), &PACKET);
                    }
                    egress.flush();
                    spent += start.elapsed();
                    drain(&callers, &mut batch);
                }
                spent
            })
        });
    }
    group.finish();
}

/// Rounds of [`connected_or_not`].
const ROUNDS: usize = 400;

/// A pass's sends from sockets `connect`ed to their callers (no address: the
/// kernel keeps the route) against the same from unconnected ones (an address
/// per packet), through io_uring and without it. Criterion runs one variant
/// after the other, and this VM drifted by up to 30 % between runs, so these
/// two alternate, pass by pass, and the per-datagram percentiles are printed.
fn connected_or_not() {
    let calls = sockets(CALLS);
    let connected = sockets(CALLS);
    let callers = sockets(CALLS);
    let to: Vec<_> = callers
        .iter()
        .map(|s| s.local_addr().expect("addr"))
        .collect();
    for (s, a) in connected.iter().zip(&to) {
        s.connect(a).expect("connect");
    }
    let mut batch = RecvBatch::new();
    println!("\nsend, one packet per call in a pass, {CALLS} calls, {ROUNDS} passes each, alternating (ns per datagram):");
    for (name, mut egress) in [
        ("io_uring SEND", Egress::new()),
        ("one syscall each, without io_uring", Egress::unbatched()),
    ] {
        let mut spent: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for round in 0..ROUNDS {
            for k in 0..2 {
                let conn = (round + k) % 2;
                let start = Instant::now();
                for i in 0..CALLS {
                    if conn == 1 {
                        egress.push(connected[i].as_raw_fd(), None, &PACKET);
                    } else {
                        egress.push(calls[i].as_raw_fd(), Some(to[i]), &PACKET);
                    }
                }
                egress.flush();
                spent[conn].push(start.elapsed().as_nanos() as f64 / CALLS as f64);
                drain(&callers, &mut batch);
            }
        }
        let pct = |v: &mut Vec<f64>, p: usize| {
            v.sort_by(f64::total_cmp);
            v[v.len() * p / 100]
        };
        let [mut with_address, mut connected] = spent;
        println!(
            "  {name}: with an address p10 {:.0} p50 {:.0} p90 {:.0}; connected p10 {:.0} p50 {:.0} p90 {:.0}; p50 {:+.1} %",
            pct(&mut with_address, 10),
            pct(&mut with_address, 50),
            pct(&mut with_address, 90),
            pct(&mut connected, 10),
            pct(&mut connected, 50),
            pct(&mut connected, 90),
            100.0 * (pct(&mut connected, 50) / pct(&mut with_address, 50) - 1.0),
        );
    }
}

/// Datagrams per `recvmmsg` on the one shared socket in [`shared_port`].
const SHARED_BATCH: usize = 64;

/// One `sendmmsg` from `fd`, a datagram of [`PACKET`] to each of `to`.
fn sendmmsg_all(fd: std::os::fd::RawFd, to: &[libc::sockaddr_in], hdrs: &mut [libc::mmsghdr]) {
    let mut iov = libc::iovec {
        iov_base: PACKET.as_ptr() as *mut libc::c_void,
        iov_len: PACKET.len(),
    };
    for (h, a) in hdrs.iter_mut().zip(to) {
        // SAFETY: all-zero is a valid msghdr.
        h.msg_hdr = unsafe { std::mem::zeroed() };
        h.msg_hdr.msg_name = (a as *const libc::sockaddr_in) as *mut libc::c_void;
        h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        h.msg_hdr.msg_iov = &mut iov;
        h.msg_hdr.msg_iovlen = 1;
        h.msg_len = 0;
    }
    let mut sent = 0;
    while sent < to.len() {
        // SAFETY: headers point at `to`, `iov` and PACKET, alive for the call.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                hdrs[sent..to.len()].as_mut_ptr(),
                (to.len() - sent) as libc::c_uint,
                0,
            )
        };
        assert!(n > 0, "sendmmsg: {}", std::io::Error::last_os_error());
        sent += n as usize;
    }
}

fn sockaddr_in(a: std::net::SocketAddr) -> libc::sockaddr_in {
    let std::net::SocketAddr::V4(a) = a else {
        panic!("IPv4 only")
    };
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Rounds of [`shared_port`].
const SHARED_ROUNDS: usize = 400;

/// A pass's receives and sends for [`CALLS`] calls, through a socket per call
/// (as now) and through one socket for all, alternating pass by pass (this
/// VM drifts between runs). Receive: each caller's datagram is sent first,
/// untimed; then the server side reads them all. Send: one packet to each
/// caller; the loopback delivery is in the time, as in [`send`].
fn shared_port() {
    let sink: Option<std::net::Ipv4Addr> = std::env::var("DATAGRAM_IO_SINK")
        .ok()
        .map(|a| a.parse().expect("DATAGRAM_IO_SINK: an IPv4 address"));
    let ip = if sink.is_some() {
        "0.0.0.0"
    } else {
        "127.0.0.1"
    };
    let per_call = sockets_on(ip, CALLS);
    let callers = sockets(CALLS);
    // Room for a whole pass's datagrams queued on one socket (500 × ~1.3 kB
    // of kernel memory is more than the default 208 kB): the load caller's
    // socket, forced past `rmem_max`, timestamps on.
    let shared = load_io::bind(ip.parse().expect("ip"), 16 << 20).expect("bind");
    // Where the sends go: the callers, or the sink's ports.
    let caller_addrs: Vec<std::net::SocketAddr> = match sink {
        None => callers
            .iter()
            .map(|s| s.local_addr().expect("addr"))
            .collect(),
        Some(ip) => (0..CALLS).map(|i| (ip, 40000 + i as u16).into()).collect(),
    };
    for (s, a) in per_call.iter().zip(&caller_addrs) {
        s.connect(a).expect("connect");
    }
    let loopback = |s: &UdpSocket| -> std::net::SocketAddr {
        (
            std::net::Ipv4Addr::LOCALHOST,
            s.local_addr().expect("addr").port(),
        )
            .into()
    };
    // A socket connected to a sink address hears nobody on loopback: with a
    // sink, the receives go to sockets of their own (unconnected).
    let per_call_rx = match sink {
        None => Vec::new(),
        Some(_) => sockets(CALLS),
    };
    let rx = if sink.is_some() {
        &per_call_rx
    } else {
        &per_call
    };
    let per_call_addrs: Vec<_> = rx.iter().map(loopback).collect();
    let shared_addr = loopback(&shared);
    let caller_in: Vec<_> = caller_addrs.iter().map(|a| sockaddr_in(*a)).collect();
    // SAFETY: all-zero is a valid mmsghdr.
    let mut hdrs: Vec<libc::mmsghdr> = (0..CALLS).map(|_| unsafe { std::mem::zeroed() }).collect();
    let mut one = RecvBatch::new();
    let mut wide = RecvBatch::with_size(SHARED_BATCH, 2048);
    let mut drain_batch = RecvBatch::new();
    let mut egress = Egress::new();
    // [per call, shared sendmmsg, shared io_uring] × [receive, send]
    let mut spent: [[Vec<f64>; 2]; 3] = Default::default();
    for round in 0..SHARED_ROUNDS {
        for k in 0..3 {
            let way = (round + k) % 3;
            // Receive.
            for (c, a) in callers.iter().zip(&per_call_addrs) {
                c.send_to(&PACKET, if way == 0 { *a } else { shared_addr })
                    .expect("send");
            }
            let start = Instant::now();
            if way == 0 {
                for s in rx {
                    assert_eq!(one.recv_one(s.as_raw_fd()).expect("recv"), 1);
                    black_box(one.get(0).map(|d| d.data.len()));
                }
            } else {
                let mut got = 0;
                while got < CALLS {
                    let n = wide.recv(shared.as_raw_fd()).expect("recv");
                    assert!(n > 0, "the shared socket lost datagrams ({got} of {CALLS})");
                    for i in 0..n {
                        black_box(wide.get(i).map(|d| d.data.len()));
                    }
                    got += n;
                }
            }
            spent[way][0].push(start.elapsed().as_nanos() as f64 / CALLS as f64);
            // Send.
            let start = Instant::now();
            match way {
                0 => {
                    for s in &per_call {
                        egress.push(s.as_raw_fd(), None, &PACKET);
                    }
                    egress.flush();
                }
                1 => sendmmsg_all(shared.as_raw_fd(), &caller_in, &mut hdrs),
                _ => {
                    for a in &caller_addrs {
                        egress.push(shared.as_raw_fd(), Some(*a), &PACKET);
                    }
                    egress.flush();
                }
            }
            spent[way][1].push(start.elapsed().as_nanos() as f64 / CALLS as f64);
            if sink.is_none() {
                drain(&callers, &mut drain_batch);
            }
        }
    }
    let pct = |v: &mut Vec<f64>, p: usize| {
        v.sort_by(f64::total_cmp);
        v[v.len() * p / 100]
    };
    println!("
one port for all calls or a port per call, {CALLS} calls, {SHARED_ROUNDS} passes each, alternating (ns per datagram, p10 / p50 / p90):");
    let names = [
        "a socket per call: recvmsg each, io_uring SEND from each (now)",
        "one socket: recvmmsg 64 at a time, one sendmmsg per pass",
        "one socket: recvmmsg 64 at a time, io_uring SEND per packet",
    ];
    let mut p50 = [[0.0; 2]; 3];
    for (way, name) in names.iter().enumerate() {
        let [recv, send] = &mut spent[way];
        p50[way] = [pct(recv, 50), pct(send, 50)];
        println!(
            "  {name}:\n    receive {:.0} / {:.0} / {:.0}; send {:.0} / {:.0} / {:.0}; both p50 {:.0} = {:.4} CPU-s per call-minute at 50 each way",
            pct(recv, 10),
            p50[way][0],
            pct(recv, 90),
            pct(send, 10),
            p50[way][1],
            pct(send, 90),
            p50[way][0] + p50[way][1],
            (p50[way][0] + p50[way][1]) * 50.0 * 60.0 / 1e9,
        );
    }
}

criterion_group!(benches, receive, send);

fn main() {
    if std::env::args().any(|a| a == "--shared-port-only") {
        for _ in 0..4 {
            shared_port();
        }
        return;
    }
    benches();
    connected_or_not();
    shared_port();
    Criterion::default().configure_from_args().final_summary();
}
