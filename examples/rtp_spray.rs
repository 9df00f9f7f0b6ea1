//! A stranger spraying RTP-sized datagrams at a range of RTP ports, for
//! measuring what an attack on live calls costs the server (BENCHMARKS.md §17).
//!
//! `cargo run --release --example rtp_spray -- PPS SECONDS PORT_LO PORT_HI [TARGET_IP] [SOURCE_IP]`
//!
//! Sends PPS datagrams a second (172 bytes: a PCMU packet's size, a valid RTP
//! version-2 header) for SECONDS, round robin over the even ports PORT_LO..=PORT_HI of
//! TARGET_IP (default 127.0.0.1), from SOURCE_IP (default 127.0.0.2, an address
//! no call trusts), and prints how many it sent. Loopback only: the
//! target must be a loopback address.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        return Err("usage: rtp_spray PPS SECONDS PORT_LO PORT_HI [TARGET_IP] [SOURCE_IP]".into());
    }
    let pps: f64 = args[0].parse()?;
    let secs: f64 = args[1].parse()?;
    let (lo, hi): (u16, u16) = (args[2].parse()?, args[3].parse()?);
    let target: IpAddr = args.get(4).map_or("127.0.0.1", String::as_str).parse()?;
    let source: IpAddr = args.get(5).map_or("127.0.0.2", String::as_str).parse()?;
    if !target.is_loopback() || lo > hi {
        return Err("the target must be a loopback address, and PORT_LO <= PORT_HI".into());
    }
    let sock = UdpSocket::bind(SocketAddr::new(source, 0))?;
    sock.set_nonblocking(true)?;
    let mut packet = [0xD5u8; 172];
    packet[0] = 0x80;
    packet[1] = 0;
    let start = Instant::now();
    let (mut sent, mut port) = (0u64, lo & !1);
    loop {
        let t = start.elapsed().as_secs_f64();
        if t >= secs {
            break;
        }
        let due = (t * pps) as u64;
        while sent < due {
            // A full socket buffer drops the datagram, as a network would.
            let _ = sock.send_to(&packet, SocketAddr::new(target, port));
            sent += 1;
            port = if port + 2 > hi { lo & !1 } else { port + 2 };
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    println!(
        "spray sent {sent} datagrams in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
