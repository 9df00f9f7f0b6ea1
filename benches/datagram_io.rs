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
//! Criterion's "elements" are datagrams: its throughput line gives the cost of
//! one.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sspr_ivr::runtime::egress::Egress;
use sspr_ivr::runtime::ingress::{enable_timestamps, RecvBatch};

const CALLS: usize = 500;

/// A 20 ms PCMU packet's size (12-byte header, 160 bytes of audio).
const PACKET: [u8; 172] = [0x55; 172];

fn sockets(n: usize) -> Vec<UdpSocket> {
    (0..n)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
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
                        egress.push(s.as_raw_fd(), *a, &PACKET);
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

criterion_group!(benches, receive, send);
criterion_main!(benches);
