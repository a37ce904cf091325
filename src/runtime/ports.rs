//! RTP port allocation from the configured range: even ports (RTCP would take the odd one above),
//! handed out round-robin so a port just released is not reused while stray packets still arrive.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

pub struct PortAllocator {
    range: (u16, u16),
    next: Mutex<u16>,
}

impl PortAllocator {
    pub fn new(range: (u16, u16)) -> Self {
        let first = range.0 + (range.0 % 2);
        PortAllocator {
            range,
            next: Mutex::new(first),
        }
    }

    /// Bind a UDP socket on the next free even port of the range.
    pub fn bind(&self, ip: IpAddr) -> std::io::Result<std::net::UdpSocket> {
        let (lo, hi) = self.range;
        let slots = u32::from(hi - lo) / 2 + 1;
        for _ in 0..slots {
            let port = {
                let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
                let p = *next;
                *next = if p.saturating_add(2) > hi {
                    lo + (lo % 2)
                } else {
                    p + 2
                };
                p
            };
            if let Ok(s) = std::net::UdpSocket::bind(SocketAddr::new(ip, port)) {
                s.set_nonblocking(true)?;
                return Ok(s);
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("no free RTP port in {lo}-{hi}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_distinct_even_ports_and_says_when_the_range_is_full() {
        let a = PortAllocator::new((41000, 41003));
        let ip: IpAddr = [127, 0, 0, 1].into();
        let s1 = a.bind(ip).expect("first");
        let s2 = a.bind(ip).expect("second");
        let p1 = s1.local_addr().expect("addr").port();
        let p2 = s2.local_addr().expect("addr").port();
        assert_ne!(p1, p2);
        assert_eq!(p1 % 2, 0);
        assert_eq!(p2 % 2, 0);
        assert!(a.bind(ip).is_err(), "only two even ports in the range");
    }
}
