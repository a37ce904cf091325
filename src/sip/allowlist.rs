//! Which source addresses may send us calls: `sip.trunk_allow` as a list of CIDR blocks or bare
//! addresses, IPv4 and IPv6. An empty list admits everyone (fine for a lab, not for the internet).

use core::net::IpAddr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllowListError {
    #[error("`{0}` is not an address or address/prefix")]
    Syntax(String),
    #[error("`{0}`: the prefix is longer than the address")]
    Prefix(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(
                u128::from(n.to_bits()),
                u128::from(a.to_bits()),
                32,
                self.prefix,
            ),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(n.to_bits(), a.to_bits(), 128, self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, width: u32, prefix: u8) -> bool {
    let shift = width.saturating_sub(u32::from(prefix));
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<Net>,
}

impl AllowList {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, AllowListError> {
        let mut nets = Vec::with_capacity(entries.len());
        for e in entries {
            let e = e.as_ref().trim();
            let (addr, prefix) = match e.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (e, None),
            };
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| AllowListError::Syntax(e.to_string()))?;
            let width: u8 = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(p) => p
                    .parse::<u8>()
                    .map_err(|_| AllowListError::Syntax(e.to_string()))?,
                None => width,
            };
            if prefix > width {
                return Err(AllowListError::Prefix(e.to_string()));
            }
            nets.push(Net { addr, prefix });
        }
        Ok(AllowList { nets })
    }

    /// True when the list is empty (everyone) or `ip` is inside one of its blocks.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.nets.is_empty() || self.nets.iter().any(|n| n.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([255, 255, 255, 255]))
    }

    #[test]
    fn blocks_and_single_addresses_admit_only_their_members() {
        let l = AllowList::parse(&["203.0.113.0/24", "127.0.0.1", "2001:db8:1::/48"]);
        let Ok(l) = l else { panic!("{l:?}") };
        assert!(l.allows(ip("203.0.113.9")));
        assert!(l.allows(ip("127.0.0.1")));
        assert!(
            l.allows(ip("::ffff:203.0.113.200")),
            "v4-mapped peers match v4 blocks"
        );
        assert!(l.allows(ip("2001:db8:1:ffff::5")));
        assert!(!l.allows(ip("203.0.114.1")));
        assert!(!l.allows(ip("127.0.0.2")));
        assert!(!l.allows(ip("2001:db8:2::1")));
    }

    #[test]
    fn an_empty_list_admits_everyone_and_zero_prefix_matches_all() {
        let empty: [&str; 0] = [];
        assert_eq!(
            AllowList::parse(&empty).map(|l| l.allows(ip("8.8.8.8"))),
            Ok(true)
        );
        assert_eq!(
            AllowList::parse(&["0.0.0.0/0"]).map(|l| l.allows(ip("8.8.8.8"))),
            Ok(true)
        );
        assert_eq!(
            AllowList::parse(&["0.0.0.0/0"]).map(|l| l.allows(ip("::1"))),
            Ok(false)
        );
    }

    #[test]
    fn mistakes_are_reported_not_ignored() {
        assert!(matches!(
            AllowList::parse(&["10.0.0.0/33"]),
            Err(AllowListError::Prefix(_))
        ));
        assert!(matches!(
            AllowList::parse(&["example.com"]),
            Err(AllowListError::Syntax(_))
        ));
        assert!(matches!(
            AllowList::parse(&["10.0.0.0/x"]),
            Err(AllowListError::Syntax(_))
        ));
    }
}
