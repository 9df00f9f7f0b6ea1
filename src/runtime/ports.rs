//! RTP port allocation: one UDP socket per call from a configured range.
//!
//! Ports are handed out round-robin (a port just freed is not reused at
//! once, so late packets of an old call do not land in a new one) and given
//! back when the [`RtpPort`] guard drops. Even ports only, leaving the odd
//! neighbour for RTCP as RFC 3550 suggests.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("no free RTP port in {min}-{max}")]
    Exhausted { min: u16, max: u16 },
}

struct Inner {
    in_use: BTreeSet<u16>,
    next: u16,
}

#[derive(Clone)]
pub struct PortPool {
    ip: IpAddr,
    min: u16,
    max: u16,
    inner: Arc<Mutex<Inner>>,
}

/// A bound RTP socket; its port returns to the pool on drop.
pub struct RtpPort {
    pub socket: UdpSocket,
    pub local: SocketAddr,
    pool: PortPool,
}

impl Drop for RtpPort {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.pool.inner.lock() {
            inner.in_use.remove(&self.local.port());
        }
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
                next: min,
            })),
        }
    }

    pub fn in_use(&self) -> usize {
        self.inner.lock().map(|i| i.in_use.len()).unwrap_or(0)
    }

    /// Bind the next free even port in the range.
    pub fn bind(&self) -> Result<RtpPort, PortError> {
        let span = (u32::from(self.max) - u32::from(self.min)) / 2 + 1;
        for _ in 0..span {
            let candidate = {
                let mut inner = self.inner.lock().expect("port pool lock poisoned");
                let mut p = inner.next;
                if p > self.max || p < self.min {
                    p = self.min;
                }
                inner.next = p.saturating_add(2);
                if inner.in_use.contains(&p) {
                    continue;
                }
                inner.in_use.insert(p);
                p
            };
            let addr = SocketAddr::new(self.ip, candidate);
            match std::net::UdpSocket::bind(addr).and_then(|s| {
                s.set_nonblocking(true)?;
                UdpSocket::from_std(s)
            }) {
                Ok(socket) => {
                    return Ok(RtpPort {
                        socket,
                        local: addr,
                        pool: self.clone(),
                    })
                }
                Err(_) => {
                    // Taken by someone else: leave it marked for this round.
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
    }
}
