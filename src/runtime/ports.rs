//! RTP port allocation: one UDP socket per call from a configured range.
//!
//! Ports are chosen at random (even ports only, leaving the odd neighbour for
//! RTCP as RFC 3550 suggests), so knowing one call's port tells nothing about the
//! next; and a port just freed is not handed out again while others are free
//! (the last [`QUARANTINE`] freed ones wait), so late packets of an old call do
//! not land in a new one. A port comes back to the pool when its [`RtpPort`]
//! guard drops.
//!
//! The socket is not registered with the reactor at all: a call reads it in
//! its own turns, which come at least every packet time
//! ([`super::ingress`]), and sends without ever waiting for it to be writable
//! (a send that would block drops the packet). Registered, every datagram
//! received (and, with a writable interest, every one sent) would wake the
//! reactor's epoll. The kernel stamps each datagram with its receive time
//! (`SO_TIMESTAMPNS`), so reading it a little later loses nothing.

use std::collections::{BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use rand::Rng;

/// How many recently freed ports wait before being chosen again (fewer when
/// the range is small).
pub const QUARANTINE: usize = 64;
/// Random picks before a full scan of the range.
const RANDOM_TRIES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("no free RTP port in {min}-{max}")]
    Exhausted { min: u16, max: u16 },
}

struct Inner {
    in_use: BTreeSet<u16>,
    /// Recently freed, oldest first.
    resting: VecDeque<u16>,
}

#[derive(Clone)]
pub struct PortPool {
    ip: IpAddr,
    min: u16,
    max: u16,
    inner: Arc<Mutex<Inner>>,
}

/// A bound RTP socket (non-blocking, receive times on); its port returns to
/// the pool on drop.
pub struct RtpPort {
    pub socket: std::net::UdpSocket,
    pub local: SocketAddr,
    pool: PortPool,
}

impl Drop for RtpPort {
    fn drop(&mut self) {
        self.pool.give_back(self.local.port());
    }
}

impl PortPool {
    pub fn new(ip: IpAddr, min: u16, max: u16) -> PortPool {
        let min = min + (min % 2);
        PortPool {
            ip,
            min,
            max,
            inner: Arc::new(Mutex::new(Inner {
                in_use: BTreeSet::new(),
                resting: VecDeque::new(),
            })),
        }
    }

    pub fn in_use(&self) -> usize {
        self.inner.lock().map(|i| i.in_use.len()).unwrap_or(0)
    }

    /// Even ports in the range.
    fn slots(&self) -> u32 {
        if self.max < self.min {
            return 0;
        }
        (u32::from(self.max) - u32::from(self.min)) / 2 + 1
    }

    fn port(&self, slot: u32) -> u16 {
        self.min + (slot * 2) as u16
    }

    fn give_back(&self, port: u16) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.in_use.remove(&port);
            let cap = QUARANTINE.min(self.slots() as usize / 4);
            if cap > 0 {
                inner.resting.push_back(port);
                while inner.resting.len() > cap {
                    inner.resting.pop_front();
                }
            }
        }
    }

    /// Reserve a port: random free ones first, then any free one.
    fn reserve(&self, tried: &BTreeSet<u16>) -> Option<u16> {
        let slots = self.slots();
        if slots == 0 {
            return None;
        }
        let mut rng = rand::thread_rng();
        let mut inner = self.inner.lock().expect("port pool lock poisoned");
        let free = |inner: &Inner, p: u16| !inner.in_use.contains(&p) && !tried.contains(&p);
        let mut pick = (0..RANDOM_TRIES)
            .map(|_| self.port(rng.gen_range(0..slots)))
            .find(|&p| free(&inner, p) && !inner.resting.contains(&p));
        if pick.is_none() {
            // Nearly full: scan from a random start, resting ports last.
            let start = rng.gen_range(0..slots);
            let ports = (0..slots).map(|i| self.port((start + i) % slots));
            pick = ports
                .clone()
                .find(|&p| free(&inner, p) && !inner.resting.contains(&p))
                .or_else(|| ports.clone().find(|&p| free(&inner, p)));
        }
        let p = pick?;
        inner.in_use.insert(p);
        inner.resting.retain(|&r| r != p);
        Some(p)
    }

    /// Bind a free even port of the range, chosen at random.
    pub fn bind(&self) -> Result<RtpPort, PortError> {
        let mut tried = BTreeSet::new();
        while let Some(candidate) = self.reserve(&tried) {
            let addr = SocketAddr::new(self.ip, candidate);
            match std::net::UdpSocket::bind(addr).and_then(|s| {
                s.set_nonblocking(true)?;
                if let Err(e) = super::ingress::enable_timestamps(&s) {
                    // Not fatal: a datagram without a receive time is taken
                    // as received at its call's turn.
                    static SAID: std::sync::Once = std::sync::Once::new();
                    SAID.call_once(
                        || tracing::warn!(error = %e, "no kernel receive times on RTP sockets"),
                    );
                }
                Ok(s)
            }) {
                Ok(socket) => {
                    return Ok(RtpPort {
                        socket,
                        local: addr,
                        pool: self.clone(),
                    })
                }
                Err(_) => {
                    // Taken by another process: skip it for this call.
                    tried.insert(candidate);
                    if let Ok(mut inner) = self.inner.lock() {
                        inner.in_use.remove(&candidate);
                    }
                }
            }
        }
        Err(PortError::Exhausted {
            min: self.min,
            max: self.max,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ports_are_even_unique_and_returned() {
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 41001, 41010);
        let a = pool.bind().unwrap();
        let b = pool.bind().unwrap();
        assert_eq!(a.local.port() % 2, 0);
        assert_ne!(a.local.port(), b.local.port());
        assert_eq!(pool.in_use(), 2);
        drop(a);
        assert_eq!(pool.in_use(), 1);
        let mut held = vec![b];
        while let Ok(p) = pool.bind() {
            held.push(p);
        }
        assert_eq!(held.len(), 5, "41002..41010 has five even ports");
        let mut ports: Vec<u16> = held.iter().map(|p| p.local.port()).collect();
        ports.sort();
        assert_eq!(ports, [41002, 41004, 41006, 41008, 41010]);
    }

    #[tokio::test]
    async fn ports_are_random_and_a_freed_one_rests() {
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 42000, 43998);
        let held: Vec<RtpPort> = (0..20).map(|_| pool.bind().unwrap()).collect();
        let ports: Vec<u16> = held.iter().map(|p| p.local.port()).collect();
        // In order, twenty ports would be 42000, 42002, …; at random, the chance of
        // any fixed successor pattern across twenty picks is nil.
        let sequential = ports.windows(2).filter(|w| w[1] == w[0] + 2).count();
        assert!(sequential < 5, "{ports:?}");
        assert!(ports
            .iter()
            .all(|p| p % 2 == 0 && (42000..=43998).contains(p)));
        drop(held);
        // A port just freed is not handed out again while another is free: with
        // one slot left and one port just given back, the new call gets the slot.
        let pool = PortPool::new("127.0.0.1".parse().unwrap(), 44000, 44038);
        let mut held: Vec<RtpPort> = (0..19).map(|_| pool.bind().unwrap()).collect();
        let taken: Vec<u16> = held.iter().map(|p| p.local.port()).collect();
        let last = (44000..=44038)
            .step_by(2)
            .find(|p| !taken.contains(p))
            .unwrap();
        let freed = held.swap_remove(7).local.port();
        let got = pool.bind().unwrap();
        assert_eq!(got.local.port(), last);
        // Full but for the resting one: then it is used.
        let again = pool.bind().unwrap();
        assert_eq!(again.local.port(), freed);
        assert!(pool.bind().is_err());
    }
}
