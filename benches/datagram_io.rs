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
//! Criterion's "elements" are datagrams: its throughput line gives the cost of
//! one.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, Criterion, Throughput};
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

criterion_group!(benches, receive, send);

fn main() {
    benches();
    connected_or_not();
    Criterion::default().configure_from_args().final_summary();
}
