//! IP networks for trunk sources, on `ipnet`. Pure.

use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use thiserror::Error;

/// An IP network, `10.0.0.0/8` or `::1/128`; a bare address is a /32 or /128. An `ipnet`
/// network read with dualgate's rules: host bits set are an error (with the network meant), and
/// IPv4-mapped IPv6 addresses match as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(IpNet);

/// Why a string is not a network.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CidrError {
    /// The address part does not parse.
    #[error("`{0}` is not an IP address")]
    BadAddress(String),
    /// The prefix is not a number within the address family's width.
    #[error("prefix `/{0}` is out of range")]
    BadPrefix(String),
    /// Bits are set beyond the prefix (`10.0.0.1/8`).
    #[error("host bits set: did you mean {0}?")]
    HostBits(String),
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, as dual-stack sockets report them) become IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Cidr {
    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.contains_canonical(canonical_ip(ip))
    }

    /// [`Cidr::contains`] for an address already made canonical ([`canonical_ip`]), so that a
    /// walk over many networks does it once. An IPv4 address in an IPv4 network is one masked
    /// compare: the network's host bits are zero (`from_str` refuses others).
    pub fn contains_canonical(&self, ip: IpAddr) -> bool {
        match (self.0, ip) {
            (IpNet::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(net.prefix_len()))
                    .unwrap_or(0);
                u32::from(a) & mask == u32::from(net.addr())
            }
            (net, ip) => net.contains(&ip),
        }
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.0.contains(&other.0.network()) || other.0.contains(&self.0.network())
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = IpAddr::from_str(a).map_err(|_| CidrError::BadAddress(a.to_string()))?;
        let addr = canonical_ip(addr);
        let net = match p {
            None => IpNet::from(addr),
            Some(p) => p
                .parse::<u8>()
                .ok()
                .and_then(|n| IpNet::new(addr, n).ok())
                .ok_or_else(|| CidrError::BadPrefix(p.to_string()))?,
        };
        if net.trunc() != net {
            return Err(CidrError::HostBits(net.trunc().to_string()));
        }
        Ok(Cidr(net))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses_and_nothing_else() {
        let cases = [
            ("127.0.0.0/8", "127.0.0.1", true),
            ("127.0.0.0/8", "128.0.0.1", false),
            ("10.1.2.3", "10.1.2.3", true),
            ("10.1.2.3", "10.1.2.4", false),
            ("0.0.0.0/0", "192.0.2.1", true),
            ("::1/128", "::1", true),
            ("::1/128", "127.0.0.1", false),
            ("127.0.0.0/8", "::ffff:127.0.0.1", true),
            ("2001:db8::/32", "2001:db8:1::5", true),
            ("2001:db8::/32", "2001:db9::5", false),
        ];
        for (net, ip, want) in cases {
            let c: Cidr = net.parse().unwrap();
            assert_eq!(c.contains(ip.parse().unwrap()), want, "{net} {ip}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        #[test]
        fn the_masked_compare_agrees_with_ipnet(
            net in proptest::prelude::any::<u32>(),
            prefix in 0u8..=32,
            ip in proptest::prelude::any::<u32>(),
            near in proptest::prelude::any::<bool>(),
            mapped in proptest::prelude::any::<bool>(),
        ) {
            let net = ipnet::Ipv4Net::new(net.into(), prefix).unwrap().trunc();
            let cidr: Cidr = net.to_string().parse().unwrap();
            // Half the addresses inside or next to the network.
            let ip = if near { u32::from(net.network()) ^ (ip & 0x1ff) } else { ip };
            let v4 = std::net::Ipv4Addr::from(ip);
            let ip = if mapped { IpAddr::V6(v4.to_ipv6_mapped()) } else { IpAddr::V4(v4) };
            let want = IpNet::V4(net).contains(&canonical_ip(ip));
            proptest::prop_assert_eq!(cidr.contains(ip), want, "{} {}", net, ip);
            proptest::prop_assert_eq!(cidr.contains_canonical(canonical_ip(ip)), want);
        }
    }

    #[test]
    fn bad_networks_are_rejected_with_the_reason() {
        assert!(
            matches!("10.0.0.1/8".parse::<Cidr>(), Err(CidrError::HostBits(s)) if s == "10.0.0.0/8")
        );
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::BadPrefix(_))
        ));
        assert!(matches!(
            "ten/8".parse::<Cidr>(),
            Err(CidrError::BadAddress(_))
        ));
    }

    #[test]
    fn nested_networks_overlap_and_disjoint_ones_do_not() {
        let a: Cidr = "10.0.0.0/8".parse().unwrap();
        let b: Cidr = "10.20.0.0/16".parse().unwrap();
        let c: Cidr = "11.0.0.0/8".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }
}
